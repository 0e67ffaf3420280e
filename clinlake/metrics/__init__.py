"""Shared-task metrics (MEDDOCAN, CodiEsp, CANTEMIST, PharmaCoNER), pure Python."""
