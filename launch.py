"""Entry point: ``python launch.py [overrides]``.

``kill -USR1 PID`` prints every thread's stack to stderr (a run that seems stuck says where).
Hydra composes ``conf/``; the composed config is converted once to the typed
:class:`aiforml.config.Config` and handed to :func:`aiforml.run.run`, or, when
``tune.space`` is set, to :func:`aiforml.sweep.run_sweep`. Nothing else happens here.

    python launch.py +experiment=ppo_sharpe                  # the RL loop: local Ray, synthetic data
    python launch.py +experiment=smoke run_dir=/tmp/smoke     # two tiny cycles in a chosen directory
    python launch.py +experiment=ppo_sharpe resume=RUN_DIR    # continue from the last checkpoint
    python launch.py +experiment=ppo_sharpe ray.address=auto  # on a running Ray cluster
    python launch.py +experiment=sweep_ppo                    # a Ray Tune sweep of whole runs
"""

from __future__ import annotations

import faulthandler
import signal

import hydra
from omegaconf import DictConfig

from aiforml.compose import to_config
from aiforml.run import run
from aiforml.runtime import exit_process, resolve_run_dir
from aiforml.sweep import run_sweep


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int:
    config = to_config(cfg)
    if config.tune.space:
        return run_sweep(config, resolve_run_dir(config))
    return run(config)


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where a stuck run is
    exit_process(main)
