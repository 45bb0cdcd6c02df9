"""The real entry point (``python launch.py +experiment=smoke``) in subprocesses: a smoke run
killed mid-run and resumed to more cycles leaves an archive, checkpoints, TensorBoard events
and the report with no duplicated or lost cycles; bad input fails at
start naming the key (checked in process, one through launch.py). Each run starts its own local Ray on 2 CPUs and takes about a minute.
Without ``ray.address`` a local Ray starts even where a dead cluster left its address file."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiforml.compose import load_config
from aiforml.runtime import check_start

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 600
SAMPLES_PER_CYCLE = 4  # smoke: 2 prompts x 2 samples

pytestmark = pytest.mark.slow


def launch_cmd(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "launch.py"), "+experiment=smoke", "loop.progress=false", *overrides]


def launch(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(launch_cmd(run_dir, f"run_dir={run_dir}", *overrides), cwd=run_dir.parent,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return proc


def resume(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(launch_cmd(run_dir, f"resume={run_dir}", *overrides), cwd=run_dir.parent,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def archived(run_dir: Path) -> list[tuple[int, int]]:
    """(cycle, sample_index) of every sample row, read-only (safe while a run writes)."""
    path = run_dir / "archive.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT cycle, sample_index FROM programs WHERE role = 'sample' "
                          "ORDER BY cycle, sample_index").fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        db.close()


def assert_complete_cycles(run_dir: Path, cycles: int) -> None:
    rows = archived(run_dir)
    assert rows == [(c, i) for c in range(1, cycles + 1) for i in range(SAMPLES_PER_CYCLE)], \
        "each cycle exactly once, each sample exactly once"


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"launch.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2-cycle smoke run SIGKILLed once cycle 2 reaches the archive (its checkpoint maybe
    not), then resumed to 3 cycles: kill recovery and extension in two launches."""
    run_dir = tmp_path_factory.mktemp("runs") / "smoke"
    proc = subprocess.Popen(launch_cmd(run_dir, f"run_dir={run_dir}", "loop.cycles=2"),
                            cwd=run_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not any(c == 2 for c, _ in archived(run_dir)):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "cycle 2 never reached the archive"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait(timeout=60)
    resumed = resume(run_dir, "loop.cycles=3")
    check(resumed)
    return run_dir, resumed


def test_a_killed_run_resumes_to_more_cycles_without_duplicates_or_losses(resumed_run) -> None:
    from aiforml.checkpoint import list_checkpoints

    run_dir, proc = resumed_run
    assert re.search(r"resume: from cycle-00000[12]", proc.stdout), proc.stdout[-2000:]
    assert_complete_cycles(run_dir, 3)
    assert [p.name for p in list_checkpoints(run_dir)] == ["cycle-000002", "cycle-000003"]
    for tag in ("env/compile_rate", "reward/mean", "reward/max", "reward/term/compile", "time/rollout",
                "time/evaluate", "ppo/policy_loss", "env/errors/parse_error"):
        assert scalar_steps(run_dir, tag) == [1, 2, 3], tag


def test_the_run_leaves_archive_checkpoints_config_and_report(resumed_run) -> None:
    from aiforml.archive import open_run
    from aiforml.checkpoint import latest_checkpoint

    run_dir, _ = resumed_run
    assert [p.name for p in run_dir.parent.iterdir()] == ["smoke"], "no second output folder (outputs/)"
    assert (run_dir / ".hydra" / "overrides.yaml").is_file(), "Hydra writes into run_dir"
    with open_run(run_dir) as archive:
        assert archive.baseline()["status"] == "ok", "the default program is the report's baseline"
        assert archive.baseline()["test_sharpe"] is not None, "sealed-test scores reach the archive"
    last = latest_checkpoint(run_dir)
    assert last is not None and last.cycle == 3
    assert (last.learner_dir / "learner_state.pt").is_file() and (last.path / "rng.pt").is_file()
    assert (run_dir / "config.yaml").is_file() and (last.path / "config.yaml").is_file()
    report = run_dir / "report"
    assert (report / "report.md").is_file() and (report / "progress.png").stat().st_size > 0


def test_a_trading_run_archives_trading_metrics_beside_the_trading_default(tmp_path: Path) -> None:
    # ppo_trading's task and data (the S&P 500) at the smoke run's size: two cycles
    run_dir = tmp_path / "trading"
    check(launch(run_dir, "data=sp500", "env.sandbox.wall_s=60"))
    assert_complete_cycles(run_dir, 2)
    from aiforml.archive import open_run

    with open_run(run_dir) as archive:
        base = archive.baseline()
    assert 'groupby("asset")' in base["program"], "the baseline is the trading default program"
    for column in ("val_total_return", "val_turnover", "val_hit_rate", "val_bh_sharpe",
                   "val_bh_total_return", "test_total_return", "test_bh_sharpe"):
        assert base[column] is not None, column
    assert base["val_mean_corr"] is None  # no Numerai statistic on a price series
    report = (run_dir / "report" / "report.md").read_text()
    assert "## Trading" in report and "buy-and-hold total return" in report


def test_a_bad_config_key_fails_at_start_naming_it(tmp_path: Path) -> None:
    proc = launch(tmp_path / "bad", "loop.cyclez=3")
    assert proc.returncode != 0 and "loop.cyclez" in proc.stderr + proc.stdout
    assert not (tmp_path / "bad" / "archive.sqlite").exists()


# The checks run() makes before Ray, data or the pool start (aiforml.runtime.check_start), in process.
@pytest.mark.parametrize("data", ["numerai", "prices"])
def test_a_missing_data_path_fails_at_start_naming_it(tmp_path: Path, data: str) -> None:
    missing = tmp_path / f"no-such-{data}"
    with pytest.raises(ValueError, match=rf"data.path={re.escape(str(missing))} does not exist"):
        check_start(load_config([f"data={data}", f"data.path={missing}"]), tmp_path / "run")


def test_missing_7b_weights_fail_at_start_naming_the_file(tmp_path: Path) -> None:
    partial = tmp_path / "mistral"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    (partial / "tokenizer.json").write_text("{}")
    cfg = load_config(["policy=mistral7b_qlora", f"policy.model_path={partial}"])
    with pytest.raises(ValueError, match=r"policy.model_path.*model.safetensors.*huggingface-cli download"):
        check_start(cfg, tmp_path / "run")


def test_an_enabled_tracker_that_is_not_installed_fails_at_start(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(ValueError, match=r"logger.wandb.enabled.*pip install wandb"):
        check_start(load_config(["logger.wandb.enabled=true"]), tmp_path / "run")


@pytest.mark.parametrize(("override", "message"), [
    ("+reward.weights.speed=0.1", "reward.weights.speed: no such reward term"),
    ("policy.sampler=vllm", "policy.sampler=vllm: no such generation backend"),
    ("data.source=csv", "data.source=csv: no such data source"),
    ("data.task=numerai_aux", "data.task=numerai_aux: no such task"),
])
def test_a_name_nothing_registers_fails_at_start_naming_the_key(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_start(load_config([override]), tmp_path / "run")


def test_tensorboard_gets_every_defined_metric(tmp_path: Path) -> None:
    from aiforml.config import LoggerConfig
    from aiforml.logger import RunLogger

    logger = RunLogger(LoggerConfig(), tmp_path, {})
    logger.log({"reward/mean": 0.5, "val/best_sharpe": None}, 1)  # None: nothing ran yet
    logger.log({"reward/mean": 0.7, "val/best_sharpe": 1.2}, 2)
    logger.close()
    assert scalar_steps(tmp_path, "reward/mean") == [1, 2]
    assert scalar_steps(tmp_path, "val/best_sharpe") == [2]


def session_processes(sid: int) -> list[str]:
    """Live (not zombie) processes of session ``sid``: what a run left behind."""
    out = subprocess.run(["ps", "-eo", "sid=,stat=,args="], capture_output=True, text=True, timeout=30).stdout
    rows = [line.split(None, 2) for line in out.splitlines()]
    return [row[2] for row in rows if len(row) == 3 and int(row[0]) == sid and not row[1].startswith("Z")]


def test_ctrl_c_mid_run_closes_every_actor_and_ray(tmp_path: Path) -> None:
    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen(launch_cmd(run_dir, f"run_dir={run_dir}", "loop.cycles=3", "loop.report=false"),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not archived(run_dir):
            assert proc.poll() is None and time.monotonic() < deadline, "cycle 1 never reached the archive"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the driver
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # launch.py's faulthandler: where the driver is stuck
            time.sleep(3)
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate(timeout=60)
            pytest.fail(f"the driver did not stop within 120 s of Ctrl-C; its threads:\n{stderr[-8000:]}")
        assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
        time.sleep(2)  # Ray's processes exit asynchronously after shutdown
        assert session_processes(proc.pid) == [], "the driver left processes running"
    finally:
        if proc.poll() is None or session_processes(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not list(run_dir.glob("checkpoints/.tmp-*")), "no half-written checkpoint is left"


def test_a_local_ray_starts_beside_a_stale_cluster_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The address file a killed ``ray start`` leaves behind (``RAY_TMPDIR/ray/ray_current_cluster``,
    here in a fresh RAY_TMPDIR) must not stop a run without ``ray.address``."""
    import shutil
    import tempfile

    import ray

    from aiforml.config import RayConfig
    from aiforml.runtime import ray_session

    assert not ray.is_initialized(), "another test left Ray running in this process"
    tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths live under it
    try:
        monkeypatch.setenv("RAY_TMPDIR", str(tmp))
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        (tmp / "ray").mkdir()
        (tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # no cluster there
        with pytest.raises(ValueError, match="existing cluster"):  # Ray's default would try to join it
            ray.init(num_cpus=1, include_dashboard=False)
        with ray_session(RayConfig(num_cpus=1)):
            assert ray.cluster_resources()["CPU"] == 1.0, "a local Ray of its own, with the CPUs asked for"
            assert ray.get(ray.put("ok"), timeout=30) == "ok"
        assert not ray.is_initialized(), "ray_session shut down the Ray it started"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)



HANGING_SHUTDOWN = """
import time, ray
from ray._private import worker
from aiforml.config import RayConfig
from aiforml.runtime import exit_process, ray_session

def main():
    with ray_session(RayConfig(num_cpus=1, shutdown_timeout_s=2.0)):
        print(ray.get(ray.put("ray is up"), timeout=30), flush=True)
        worker.disconnect = lambda *args, **kwargs: time.sleep(3600)  # ray.shutdown() never returns
    print("the run went on", flush=True)
    return 3

exit_process(main)
"""


def test_a_run_exits_with_no_ray_process_left_when_ray_shutdown_hangs(tmp_path: Path) -> None:
    """Ray's driver shutdown once hung in its core worker after Ctrl-C; the run must still exit."""
    proc = subprocess.Popen([sys.executable, "-c", HANGING_SHUTDOWN], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 3, f"not the run's own exit code: {stderr[-3000:]}"
        assert stdout.startswith("ray is up\n") and "the run went on" in stdout.splitlines()
        assert "did not return within ray.shutdown_timeout_s=2.0" in stderr
        time.sleep(2)  # killed processes are reaped asynchronously
        assert session_processes(proc.pid) == [], "Ray's processes outlived the run"
    finally:
        if proc.poll() is None or session_processes(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
