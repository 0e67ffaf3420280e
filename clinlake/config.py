"""The one configuration loader: conf/base.yaml <- conf/<env>.yaml <- --set key=value overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clinlake.errors import UserError

DEFAULT_ENV = "local"


def conf_dir() -> Path:
    """Folder holding base.yaml and the environment files (CLINLAKE_CONF_DIR, else ./conf, else the repo's)."""
    env_dir = os.environ.get("CLINLAKE_CONF_DIR")
    if env_dir:
        return Path(env_dir)
    cwd_conf = Path.cwd() / "conf"
    if (cwd_conf / "base.yaml").exists():
        return cwd_conf
    return Path(__file__).resolve().parent.parent / "conf"


def load_config(env: str | None = None, sets: Iterable[str] = (), lake: str | None = None) -> DictConfig:
    """Merge base, environment and dotted `key=value` overrides; `lake` (from --lake) wins over all."""
    folder = conf_dir()
    env = env or os.environ.get("CLINLAKE_ENV", DEFAULT_ENV)
    layers = []
    for name in ("base", env):
        path = folder / f"{name}.yaml"
        if not path.exists():
            if name == "base":
                raise UserError(f"configuration not found: {path}")
            raise UserError(f"unknown environment '{env}': no {path}")
        try:
            layers.append(OmegaConf.load(path))
        except (OSError, OmegaConfBaseException, ValueError) as exc:  # yaml errors subclass ValueError-ish types
            raise UserError(f"unreadable configuration {path}: {str(exc).splitlines()[0]}") from exc
        except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and friends: still one line for the user
            raise UserError(f"unreadable configuration {path}: {str(exc).splitlines()[0]}") from exc
    sets = list(sets or [])
    for item in sets:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got '{item}'")
    try:
        overrides = OmegaConf.from_dotlist(sets)
        cfg = OmegaConf.merge(*layers, overrides)
        if lake:
            cfg.lake = lake
        cfg.env = env
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise UserError(f"bad configuration: {str(exc).splitlines()[0]}") from exc
    return cfg


def path_of(cfg: DictConfig, value: str | os.PathLike) -> str:
    """Absolute path for a configured path: relative ones are taken from the project root."""
    p = Path(str(value))
    if p.is_absolute() or "://" in str(value):
        return str(value)
    root = Path(str(cfg.get("project_root", ".")))
    return str((root / p).resolve())


def require_path(path: str, message: str) -> str:
    """`path` unchanged when it exists or is a URI (checked by the reader there); else UserError(message)."""
    if "://" not in path and not Path(path).exists():
        raise UserError(message)
    return path


def lake_path(cfg: DictConfig, table: str) -> str:
    """Folder of one Delta table under the lake root."""
    root = str(cfg.lake)
    if "://" in root:
        return root.rstrip("/") + "/" + table
    return str(Path(path_of(cfg, root)) / table)


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """Plain dict view of a config (for logging as MLflow params)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def spark_settings(conf: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`spark.conf` as flat Spark settings: nested keys joined by dots, booleans lower-case, null = left unset.

    YAML writes `spark.sql.shuffle.partitions: 8` as one key, but `--set spark.conf.spark.sql.shuffle.partitions=4`
    arrives nested ({spark: {sql: {shuffle: {partitions: 4}}}}); both must reach Spark as the same setting.
    """
    out: dict[str, str] = {}
    for key, value in conf.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(spark_settings(value, f"{name}."))
        elif value is not None:   # str(None) would reach Spark (or a JVM option line) as the text "None"
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out
