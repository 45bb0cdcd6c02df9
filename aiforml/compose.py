"""Compose the Hydra configuration in ``conf/`` outside ``@hydra.main`` and type it.

For the command-line tools (``python -m aiforml.evaluate``, the MCP server) and tests,
which take ``key=value`` overrides like ``launch.py`` does. Responsible for locating
``conf/``, composing with overrides, and converting once to :class:`aiforml.config.Config`;
a bad override fails with Hydra's message or a ``ValueError`` that names the key. A run's
own resolved config (``RUN_DIR/config.yaml``, written by :mod:`aiforml.run`) composes the
same way, as the primary config in place of ``conf/`` (:func:`load_run_config`).

Every default lives once, in the dataclasses of :mod:`aiforml.config`: importing this module
stores them in Hydra's ConfigStore as ``aiforml_base``, the first entry of
``conf/config.yaml``'s defaults list, so group files hold only what a choice changes and any
key can be overridden on the command line.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from aiforml.config import Config, from_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
RUN_CONFIG_FILE = "config.yaml"  # the resolved config a run writes into its directory


def _first_set(*values: Any) -> Any:
    """``${aiforml_first_set:a,b,c}``: the first value that is not null (conf/config.yaml's
    ``hydra.run.dir`` uses it so Hydra writes into ``resume`` or ``run_dir`` when one is given)."""
    return next((v for v in values if v is not None), None)


if not OmegaConf.has_resolver("aiforml_first_set"):
    OmegaConf.register_new_resolver("aiforml_first_set", _first_set)
# Plain data, not the dataclass: OmegaConf's typed nodes know no Literal; ``from_dict`` types it.
ConfigStore.instance().store(name="aiforml_base", node=dataclasses.asdict(Config()))


def to_config(cfg: DictConfig | dict[str, Any]) -> Config:
    """Convert a composed config (Hydra's, without its own ``hydra`` node) to the typed one."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("hydra", None)
    return from_dict(Config, data)


def load_config(overrides: list[str] | None = None, config_name: str = "config",
                config_dir: Path = CONF_DIR) -> Config:
    """Compose ``<config_dir>/<config_name>.yaml`` with ``overrides`` and return the typed config."""
    if not Path(config_dir).is_dir():
        raise FileNotFoundError(f"configuration folder not found: looked in {config_dir}")
    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
            composed = compose(config_name=config_name, overrides=list(overrides or []))
    except HydraException as exc:
        raise ValueError(f"bad configuration override: {exc}") from exc
    return to_config(composed)


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """A run's own config (``RUN_DIR/config.yaml``) with ``overrides`` applied on top.

    The run's file is the whole resolved config, so it is the primary config here (copied
    alone into a temporary folder: nothing else in the run directory is composed); keys
    that are not in it fail as on ``launch.py``'s command line. Group choices
    (``data=numerai``) do not apply: set the keys (``data.source=numerai data.path=...``).
    """
    groups = {folder.name for folder in CONF_DIR.iterdir() if folder.is_dir()}  # data, env, experiment, ...
    for override in overrides or []:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in groups:
            raise ValueError(f"{override}: a group choice does not apply to a run's config; set its keys "
                             f"instead (e.g. {key}.<field>=<value>)")
    path = Path(run_dir).expanduser() / RUN_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no run config at {path}: a run directory holds the {RUN_CONFIG_FILE} "
                                "that launch.py wrote at its start")
    data = yaml.safe_load(path.read_text()) or {}
    # On the dataclass defaults: a run written before a key existed still composes and takes it.
    data = {"defaults": ["aiforml_base", "_self_"], **data}
    with tempfile.TemporaryDirectory(prefix="aiforml-run-config-") as folder:
        (Path(folder) / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return load_config(overrides, config_dir=Path(folder))


DATA_CHOICES = {name: f"data={name}" for name in ("synthetic", "synthetic_realistic", "sp500", "synthetic_prices")}


def data_overrides(data: str, task: str | None = None) -> list[str]:
    """Config overrides for a command line's ``--data``: a named data set, or a path.

    A path is price data (task trading) or Numerai parquet (task numerai): ``task`` when
    given, else inferred by :func:`infer_task`.
    """
    if data in DATA_CHOICES:
        return [DATA_CHOICES[data]] + ([f"++data.task={task}"] if task else [])
    path = Path(data).expanduser().resolve()
    if not path.exists():
        raise ValueError(f"--data: no such file or folder {path} (or use one of {sorted(DATA_CHOICES)})")
    if (task or infer_task(path)) == "trading":
        return ["data=prices", f"data.path={path}"]
    return ["data=numerai", f"data.path={path}"]


def infer_task(path: Path) -> str:
    """numerai for a folder with train.parquet or a parquet file without a close column; else trading."""
    if path.is_dir():
        return "numerai" if (path / "train.parquet").exists() else "trading"
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = {name.strip().lower() for name in pq.read_schema(path).names}
        return "trading" if "close" in names else "numerai"
    return "trading"
