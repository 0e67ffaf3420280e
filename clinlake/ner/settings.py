"""Model settings: conf/models_defaults.yaml as the bottom layer under the loaded configuration."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from clinlake.config import conf_dir
from clinlake.errors import UserError

DEFAULTS_FILE = "models_defaults.yaml"


def with_model_defaults(cfg: DictConfig) -> DictConfig:
    """cfg with models.{text,embeddings,ner,deid} defaults filled in (keys already in cfg win)."""
    candidates = [conf_dir() / DEFAULTS_FILE, Path(__file__).resolve().parents[2] / "conf" / DEFAULTS_FILE]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        return cfg
    merged = OmegaConf.merge(OmegaConf.load(path), cfg)
    OmegaConf.resolve(merged)
    return merged  # type: ignore[return-value]


def model_settings(cfg: DictConfig, model: str) -> DictConfig:
    """models.ner.defaults overlaid with models.ner.models.<model> (one recogniser's full settings)."""
    ner = cfg.models.get("ner")
    if ner is None or model not in (ner.get("models") or {}):
        known = ", ".join(sorted((ner or {}).get("models") or {}))
        raise UserError(f"unknown NER model '{model}' (configured: {known or 'none'})")
    return OmegaConf.merge(ner.get("defaults") or {}, ner.models[model])  # type: ignore[return-value]


def deid_settings(cfg: DictConfig) -> DictConfig:
    """models.ner.defaults overlaid with models.deid (the de-identification recogniser's settings)."""
    return OmegaConf.merge(cfg.models.ner.get("defaults") or {}, cfg.models.deid)  # type: ignore[return-value]
