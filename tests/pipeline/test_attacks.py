"""Hostile programs through the whole evaluator, static checks off: the sandbox contains each.

Every test asserts the status, and that nothing reached a validation target, the network,
or outlived the evaluation.
"""

from __future__ import annotations

import os
import time

import pytest

from aiforml.pipeline.defaults import default_program_source
from aiforml.program import Program

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _nothing_survives(harness_processes):
    yield
    assert harness_processes() == [], "a sandbox process outlived the evaluation"


def run(evaluator, source: str):
    return evaluator.evaluate(Program(source))


def test_infinite_loop_times_out(short_wall_evaluator):
    started = time.monotonic()
    result = run(short_wall_evaluator, "def define_model():\n    while True:\n        pass\n")
    assert result.status == "timeout"
    assert time.monotonic() - started < short_wall_evaluator.cfg.sandbox.wall_s + 15


def test_memory_bomb_is_stopped(open_evaluator):
    result = run(open_evaluator, (
        "def create_features(df, feature_cols):\n"
        "    hog = []\n"
        "    while True:\n"
        "        hog.append(bytearray(50_000_000))\n"))
    assert result.status == "memory", result.message


def test_fork_bomb_is_contained(short_wall_evaluator):
    result = run(short_wall_evaluator, (
        "import os\n"
        "def create_features(df, feature_cols):\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            pass\n"))
    assert result.status in ("timeout", "runtime_error", "memory"), result.message
    # the host can still start processes and nothing is left behind
    assert os.system("true") == 0


def test_network_is_unreachable(open_evaluator, listener):
    port, hits = listener
    result = run(open_evaluator, (
        "import socket\n"
        "def create_features(df, feature_cols):\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    return df[feature_cols]\n"))
    assert result.status == "runtime_error"
    assert hits == []


def test_network_through_an_allowed_library_is_unreachable(evaluator, listener):
    # static checks ON: pandas is allowed, and pandas can open URLs
    port, hits = listener
    result = run(evaluator, (
        "def create_features(df, feature_cols):\n"
        "    import pandas as pd\n"
        f"    pd.read_csv('http://127.0.0.1:{port}/targets.csv')\n"
        "    return df[feature_cols]\n"))
    assert result.status == "runtime_error"
    assert hits == []


def test_files_outside_the_sandbox_are_invisible(evaluator, tmp_path):
    secret = tmp_path / "holdout.csv"
    secret.write_text("era,target\n1,0.5\n")
    for path in (secret, "/root/.bashrc", "/work/main/pyproject.toml", "/etc/shadow"):
        result = run(evaluator, (
            "def create_features(df, feature_cols):\n"
            "    import pandas as pd\n"
            f"    print(pd.read_csv({str(path)!r}, header=None).to_string())\n"
            "    return df[feature_cols]\n"))
        assert result.status == "runtime_error", (path, result.message)
        assert "FileNotFoundError" in result.message or "No such file" in result.message, result.message
        assert "era,target" not in result.stdout


def test_environment_variables_do_not_leak(open_evaluator, monkeypatch):
    monkeypatch.setenv("AIFORML_SECRET_TOKEN", "s3cr3t-value")
    result = run(open_evaluator, (
        "import os\n"
        "def create_features(df, feature_cols):\n"
        "    found = dict(os.environ)\n"
        "    for pid in ['1', 'self', str(os.getppid())]:\n"
        "        try:\n"
        "            found[pid] = open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace')\n"
        "        except OSError as e:\n"
        "            found[pid] = repr(e)\n"
        "    print(found)\n"
        "    return df[feature_cols]\n"))
    assert result.status == "ok", result.message
    assert "AIFORML_SECRET_TOKEN" not in result.stdout
    assert "s3cr3t-value" not in result.stdout


def test_double_forked_daemon_does_not_survive(open_evaluator, harness_processes):
    result = run(open_evaluator, (
        "import os, time\n"
        "def create_features(df, feature_cols):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "        os._exit(0)\n"
        "    return df[feature_cols]\n"))
    assert result.status == "ok", result.message
    time.sleep(0.5)
    assert harness_processes() == []


def test_monkeypatched_metric_changes_nothing(open_evaluator):
    honest = open_evaluator.evaluate(Program(default_program_source()))
    cheat = run(open_evaluator, (
        "import numerai_tools.scoring as scoring\n"
        "scoring.numerai_corr = lambda *a, **k: 1.0\n"
        "scoring.pearson_correlation = lambda *a, **k: 1.0\n" + default_program_source()))
    assert cheat.status == "ok", cheat.message
    assert cheat.validation.mean_corr == pytest.approx(honest.validation.mean_corr)
    assert cheat.validation.mean_corr < 0.5


def test_a_forged_result_file_is_checked(open_evaluator):
    # The child claims success and writes its own predictions of the wrong length.
    result = run(open_evaluator, (
        "import json, os, sys, numpy as np\n"
        "def create_target(df):\n"
        "    out = os.path.dirname(sys.argv[1])\n"
        "    np.save(os.path.join(out, 'predictions.npy'), np.ones(3))\n"
        "    open(os.path.join(out, 'result.json'), 'w').write(json.dumps({'status': 'ok'}))\n"
        "    os._exit(0)\n"))
    assert result.status == "invalid_output"


def test_links_and_fifos_in_the_output_are_refused(open_evaluator):
    # A FIFO would block a naive reader forever; a link would make it read a host file.
    result = run(open_evaluator, (
        "import json, os, sys\n"
        "def create_target(df):\n"
        "    out = os.path.dirname(sys.argv[1])\n"
        "    os.mkfifo(os.path.join(out, 'p_0.npy'))\n"
        "    os.symlink('/etc/passwd', os.path.join(out, 'oof.npy'))\n"
        "    open(os.path.join(out, 'result.json'), 'w').write(json.dumps({'status': 'ok'}))\n"
        "    os._exit(0)\n"))
    assert result.status == "invalid_output"
    # refused by the reader, or never there: the sandbox may forbid creating them at all, and
    # removes them once the run has ended
    assert any(m in result.message for m in ("regular file", "did not write", "after 0 of")), result.message


REWRITE_EVERYTHING = (
    "import json, os, sys\n"
    "def rewrite(stage, folders):\n"
    "    hit, seen = [], []\n"
    "    for folder in folders:\n"
    "        for name in os.listdir(folder):\n"
    "            seen.append(name)\n"
    "            path = os.path.join(folder, name)\n"
    "            for how in (lambda: os.chmod(path, 0o666),\n"
    "                        lambda: open(path, 'r+b').write(b'\\x93NUMPY' + b'\\x00' * 200),\n"
    "                        lambda: os.truncate(path, 0), lambda: os.unlink(path)):\n"
    "                try:\n"
    "                    how()\n"
    "                    hit.append(name)\n"
    "                except OSError:\n"
    "                    pass\n"
    "    print(stage, 'saw', sorted(seen), 'rewrote', hit)\n"
    "    return sorted(seen), hit\n"
    "def define_model():\n"
    "    job = json.load(open(sys.argv[1]))\n"
    "    rewrite('model', (job['inbox'], job['data_dir']))\n"
    "    from sklearn.linear_model import Ridge\n"
    "    return Ridge()\n")


def test_shared_hand_off_files_cannot_be_rewritten_through_a_link(open_evaluator):
    """The training rows are one inode: the training view's file, linked as the feature view's
    first rows, into each guard's cut view and into the default features' inbox (and the
    actors' memory map). A program that writes into every file it is handed, from the model
    stage, the feature stage and the guards, chmods them or swaps them, changes nothing for
    the next program."""
    import hashlib

    def digest(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}

    honest = open_evaluator.evaluate(Program(default_program_source()))
    before = digest(open_evaluator.feature_dir), digest(open_evaluator.train_dir)
    assert {"features.head.npy", "features.rest"} <= set(before[0])
    result = run(open_evaluator, REWRITE_EVERYTHING)  # keeps the default features: its inbox holds the link
    assert result.status == "ok", result.message
    assert "'x_train.npy'" in result.stdout and "'features.npy'" in result.stdout, result.stdout
    assert "rewrote []" in result.stdout and "rewrote ['" not in result.stdout, result.stdout
    # its feature stage and two guards (joined cut views) say what they saw and hit through a
    # failure (only the model stage's output comes back); its model stage prints as above
    own = REWRITE_EVERYTHING + (
        "def create_features(df, feature_cols):\n"
        "    seen, hit = rewrite('features', (json.load(open(sys.argv[1]))['data_dir'],))\n"
        "    if hit or not {'features.head.npy', 'features.rest'} <= set(seen):\n"
        "        raise RuntimeError(f'saw {seen}, rewrote {hit}')\n"
        "    return df[feature_cols] * 2\n")
    result = run(open_evaluator, own)
    assert result.status == "ok", result.message
    assert "rewrote ['" not in result.stdout, result.stdout
    assert (digest(open_evaluator.feature_dir), digest(open_evaluator.train_dir)) == before
    again = open_evaluator.evaluate(Program(default_program_source()))
    assert again.validation.per_era_corr == honest.validation.per_era_corr


def test_the_hand_off_lock_and_shared_bases_are_out_of_reach(open_evaluator):
    """Beside the views lie the folder's lock (held by every user of the views) and the
    feature-neutral bases every actor maps. A program looks for them from both stages and
    tries to lock, rewrite or remove what it finds; then a program whose own feature output
    the trusted side maps scores as it did."""
    honest = open_evaluator.evaluate(Program(default_program_source()))  # scored: the bases are written
    base = open_evaluator.feature_dir.parent
    assert (base / "lock").exists() and any(p.name.startswith("fnc-") for p in base.iterdir())
    probe = (
        "import fcntl, json, os, sys\n"
        "def reach(stage):\n"
        "    job = json.load(open(sys.argv[1]))\n"
        "    parent = os.path.dirname(job['data_dir'].rstrip('/'))\n"
        "    names = os.listdir(parent) if os.path.isdir(parent) else []\n"
        "    for name in names:\n"
        "        path = os.path.join(parent, name)\n"
        "        for how in (lambda: fcntl.flock(os.open(path, os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB),\n"
        "                    lambda: os.truncate(path, 0), lambda: os.unlink(path)):\n"
        "            try:\n"
        "                how()\n"
        "            except OSError:\n"
        "                pass\n"
        "    print(stage, 'beside the view:', sorted(names))\n"
        "def create_features(df, feature_cols):\n"
        "    reach('features')\n"
        "    return df[feature_cols]\n"
        "def define_model():\n"
        "    reach('model')\n"
        "    from sklearn.linear_model import Ridge\n"
        "    return Ridge()\n")
    result = run(open_evaluator, probe)
    assert result.status == "ok", result.message
    assert "model beside the view: ['train']" in result.stdout, result.stdout  # its own view only
    assert (base / "lock").exists() and any(p.name.startswith("fnc-") for p in base.iterdir())
    again = open_evaluator.evaluate(Program(default_program_source()))
    assert again.validation.per_era_corr == honest.validation.per_era_corr
    assert again.validation.feature_neutral_corr == honest.validation.feature_neutral_corr
