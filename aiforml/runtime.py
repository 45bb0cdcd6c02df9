"""What a run and a sweep share: the run directory, the checks at start, the config, Ray.

Responsible for: choosing the run directory (``resume``, else ``run_dir``, else Hydra's
output dir), the checks that fail before anything starts (a missing data path or weights
folder, a fresh run pointed at a directory that holds one, trackers that cannot start, a
reward term, generation backend, data source or task that names nothing registered), the
resolved config as plain data (its file is ``aiforml.compose.RUN_CONFIG_FILE``), and
connecting to Ray (local unless ``ray.address``) and leaving it, bounded even when Ray's own
shutdown hangs. ``aiforml.run`` (one run) and ``aiforml.sweep`` (many) both build on it;
it imports neither.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import ray
from hydra.core.hydra_config import HydraConfig

from aiforml.checkpoint import list_checkpoints
from aiforml.config import Config, RayConfig
from aiforml.data import check_source
from aiforml.logger import check_trackers
from aiforml.policy.model import check_model_folder, resolve_policy_config
from aiforml.policy.sampling import get_sampler
from aiforml.reward import check_weights
from aiforml.tasks import check_task

log = logging.getLogger(__name__)


def resolve_run_dir(cfg: Config) -> Path:
    """``resume`` when continuing, else ``run_dir``, else Hydra's output dir, else outputs/<time>."""
    if cfg.resume:
        path = Path(cfg.resume).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"resume={cfg.resume}: no such run directory")
        return path
    if cfg.run_dir:
        return Path(cfg.run_dir).expanduser().resolve()
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir).resolve()
    return Path("outputs", time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()


def check_start(cfg: Config, run_dir: Path) -> None:
    """Fail at start, naming the key, on what would otherwise fail minutes in."""
    if cfg.data.source == "numerai" and cfg.data.path and not Path(cfg.data.path).expanduser().exists():
        raise ValueError(f"data.path={cfg.data.path} does not exist: point it at a folder of Numerai parquet files")
    if cfg.data.source == "prices" and cfg.data.path and not Path(cfg.data.path).expanduser().exists():
        raise ValueError(f"data.path={cfg.data.path} does not exist: point it at an OHLCV CSV/parquet file or folder")
    check_trackers(cfg.logger)
    check_weights(cfg.reward)
    check_source(cfg.data.source)
    check_task(cfg.data.resolved_task)
    get_sampler(cfg.policy.sampler)
    _check_policy_weights(cfg)
    if not cfg.resume and list_checkpoints(run_dir):
        raise ValueError(f"run_dir={run_dir} already holds a run with checkpoints: continue it with "
                         f"resume={run_dir}, or choose another run_dir")


def _check_policy_weights(cfg: Config) -> None:
    """A policy loaded from weights (not the tiny one built here) needs them all on this machine."""
    resolved, _ = resolve_policy_config(cfg.policy)
    if resolved.name != "tiny" or resolved.model_path:
        check_model_folder(resolved.model_path)


def config_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


@contextmanager
def ray_session(cfg: RayConfig) -> Iterator[None]:
    """Connect to Ray (local unless ``ray.address``); shut down only what this call started.

    Without ``ray.address`` the run starts a Ray of its own whatever else is on the machine:
    ``address="local"``, because Ray's default (None) joins the cluster that
    ``/tmp/ray/ray_current_cluster`` or ``$RAY_ADDRESS`` names (another user's, or one killed
    long ago) and then refuses ``num_cpus``.
    """
    if ray.is_initialized():
        yield
        return
    if cfg.address:
        ray.init(address=cfg.address, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=cfg.include_dashboard,
                 log_to_driver=True)
    try:
        yield
    finally:
        shutdown_ray(cfg.shutdown_timeout_s)


def shutdown_ray(timeout_s: float) -> None:
    """``ray.shutdown()``, bounded by ``timeout_s``.

    Ray's driver shutdown can hang in its core worker's ``shutdown_driver`` (seen once: a run
    Ctrl-C'd during the full test suite; not reproduced in 18 runs alone or beside a busy
    core), and a run that is done, or interrupted, then never exits. It runs in a thread here;
    past ``timeout_s`` Ray's own processes (raylet, GCS, workers) are killed, which ends a wait
    on them (a driver connected to a cluster started none: nothing of the cluster is killed),
    and Ray's exit hook, which would block on the same shutdown, is removed. If it still does
    not return, :func:`exit_process` leaves without the interpreter's teardown.
    """
    done = threading.Event()

    def shut() -> None:
        try:
            ray.shutdown()
        except Exception:
            log.exception("ray.shutdown() failed")
        finally:
            done.set()

    threading.Thread(target=shut, name="ray-shutdown", daemon=True).start()
    if done.wait(timeout_s):
        return
    log.warning("ray.shutdown() did not return within ray.shutdown_timeout_s=%s s: killing the "
                "processes this Ray driver started", timeout_s)
    node = ray._private.worker._global_node  # connected to a cluster: it holds no process
    if node is not None:
        node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)
    atexit.unregister(ray._private.worker.shutdown)
    if not done.wait(5.0):
        _RAY_LEFT_HANGING.set()
        log.warning("ray.shutdown() still has not returned; its processes are gone, the run goes on")


_RAY_LEFT_HANGING = threading.Event()  # a Ray shutdown never returned: its core worker is half torn down


def exit_process(main: Callable[[], int | None]) -> NoReturn:
    """``sys.exit(main())``; after a Ray shutdown that never returned, ``os._exit`` with that code.

    The interpreter's own exit would run the destructors of Ray's half torn-down core worker,
    which crash (SIGSEGV, measured): the run's result and exit code would be lost to it.
    """
    try:
        code = main()
    except SystemExit as stop:
        if not _RAY_LEFT_HANGING.is_set():
            raise
        code = stop.code if isinstance(stop.code, int) or stop.code is None else 1
        if not isinstance(stop.code, int) and stop.code is not None:
            print(stop.code, file=sys.stderr)  # as sys.exit("message") prints it
    except BaseException as error:
        if not _RAY_LEFT_HANGING.is_set():
            raise
        traceback.print_exc()
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
    if not _RAY_LEFT_HANGING.is_set():
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
