"""The promotion gate: a challenger replaces @champion only when it is not worse and something is better."""

from __future__ import annotations

from typing import Mapping, Sequence


def decide(champion: Mapping[str, float], challenger: Mapping[str, float], main: str, others: Sequence[str],
           margin: float) -> tuple[bool, str]:
    """Promote iff main(challenger) >= main(champion) - margin and at least one tracked metric is strictly better."""
    if main not in challenger or main not in champion:
        return False, f"main metric '{main}' missing from the evaluation"
    if challenger[main] < champion[main] - margin:
        return False, f"{main} {challenger[main]:.4f} is worse than champion {champion[main]:.4f} by more than {margin}"
    better = [m for m in (main, *others) if m in challenger and m in champion and challenger[m] > champion[m]]
    if not better:
        return False, "no tracked metric is better than the champion's"
    return True, f"not worse on {main} (margin {margin}) and better on {', '.join(better)}"


def side_by_side(champion: Mapping[str, float], challenger: Mapping[str, float]) -> list[dict[str, object]]:
    """Rows (metric, champion, challenger, delta) over the numeric metrics both evaluations report."""
    rows = []
    for key in sorted(set(champion) & set(challenger)):
        a, b = champion[key], challenger[key]
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            rows.append({"metric": key, "champion": a, "challenger": b, "delta": b - a})
    return rows
