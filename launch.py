"""Entry point: ``python launch.py [overrides]``.

Hydra composes ``conf/``; the composed config is converted once to the typed
:class:`aiforml.config.Config` and handed to :func:`aiforml.run.run`. Nothing else
happens here.

    python launch.py                                  # embedded default: synthetic data, local CPU
    python launch.py data=synthetic_realistic env.sandbox.wall_s=300
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from aiforml.compose import to_config


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int:
    from aiforml.run import run

    return run(to_config(cfg))


if __name__ == "__main__":
    sys.exit(main())
