"""Escape attempts: network, files, environment, daemons, output floods, writes outside."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aiforml.sandbox import Sandbox, SandboxResult

Runner = Callable[..., SandboxResult]
Leftovers = Callable[[str], list[int]]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _needs_bwrap(require: Callable[..., None]) -> None:
    require("bwrap")



def test_network_is_unreachable(run_script: Runner, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run_script(
        f"""
        import json, socket
        report = {{}}
        for name, addr in (("loopback", ("127.0.0.1", {port})), ("external", ("1.1.1.1", 53)),
                           ("dns", ("example.com", 80))):
            try:
                socket.create_connection(addr, timeout=2).close()
                report[name] = "connected"
            except OSError as exc:
                report[name] = type(exc).__name__
        print(json.dumps(report))
        """
    )
    assert result.ok, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"loopback", "external", "dns"}
    assert "connected" not in report.values(), report
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever arrived at the test's port


def test_files_outside_are_invisible(run_script: Runner, tmp_path: Path) -> None:
    secret = tmp_path / "holdout" / "labels.csv"
    secret.parent.mkdir()
    secret.write_text("the answers")
    result = run_script(
        f"""
        import json, os
        report = {{}}
        for path in ({str(secret)!r}, "/root/.bashrc", {str(REPO / "aiforml" / "config.py")!r},
                     "/etc/shadow", "/home", "/sys/fs/cgroup", "/dev/shm/x"):
            try:
                with open(path) as f:
                    report[path] = "read: " + f.read(20)
            except OSError as exc:
                report[path] = type(exc).__name__
        report["listdir /tmp"] = sorted(os.listdir("/tmp"))
        print(json.dumps(report))
        """
    )
    assert result.ok, result.stderr
    report = json.loads(result.stdout)
    assert not [p for p, v in report.items() if str(v).startswith("read")], report
    # the private /tmp holds only the paths down to what is bound there: the rw_dir and,
    # when the checkout lives under /tmp, the venv
    bound = (tmp_path, Path(sys.prefix), Path(sys.base_prefix))
    expected = sorted({b.parts[2] for b in bound if len(b.parts) > 2 and b.parts[1] == "tmp"})
    assert report["listdir /tmp"] == expected


def test_environment_secret_is_not_visible(
    run_script: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    monkeypatch.setenv("AIFORML_TEST_SECRET", secret)
    seen_file = tmp_path / "rw" / "seen.txt"
    result = run_script(
        f"""
        import json, os
        seen = [str(dict(os.environ))]
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        for pid in pids + ["self", str(os.getppid())]:
            for name in ("environ", "cmdline"):
                try:
                    seen.append(open(f"/proc/{{pid}}/{{name}}", "rb").read().decode(errors="replace"))
                except OSError as exc:
                    seen.append(f"{{pid}}/{{name}}: {{exc}}")
        open({str(seen_file)!r}, "w").write("\\n".join(seen))
        print(json.dumps(pids))
        """,
        env={"VISIBLE": "yes"},
    )
    assert result.ok, result.stderr
    seen = seen_file.read_text()
    assert "VISIBLE" in seen  # the env the caller passes does arrive, and /proc was readable
    assert secret not in seen and secret not in result.stderr
    assert len(json.loads(result.stdout)) <= 3  # bwrap's init, bash, the child: no host process


def test_daemon_dies_with_the_run(
    run_script: Runner, marker: str, leftovers: Leftovers, tmp_path: Path
) -> None:
    """A setsid double-fork that keeps stdout open and writes every 100 ms must not survive."""
    rw = tmp_path / "rw"
    result = run_script(
        f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                n = 0
                while True:  # stdout inherited and held open
                    n += 1
                    with open({str(rw / "beat")!r}, "w") as f:
                        f.write(str(n))
                    time.sleep(0.1)
            os._exit(0)
        time.sleep(0.5)
        print("parent done")
        """
    )
    assert result.outcome == "exited" and "parent done" in result.stdout
    assert result.wall_s < 20.0 / 2  # did not wait for the wall-clock limit on the held pipe
    assert leftovers(marker) == []
    beat = (rw / "beat").read_text()
    time.sleep(0.4)
    assert (rw / "beat").read_text() == beat


def test_output_flood_is_capped(run_script: Runner, sandbox: Sandbox) -> None:
    result = run_script(
        """
        import os
        chunk = b"x" * 2**20
        for _ in range(300):
            os.write(1, chunk)
            os.write(2, chunk)
        print("end")
        """
    )
    assert result.ok, result.message
    cap = sandbox.cfg.output_bytes
    for text in (result.stdout, result.stderr):
        assert len(text) <= cap + 60
        assert "bytes truncated]" in text
    assert result.stdout.rstrip().endswith("end")


def test_writes_outside_rw_dir_fail(run_script: Runner, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "data.txt").write_text("data")
    rw = tmp_path / "rw"
    result = run_script(
        f"""
        import json
        report = {{}}
        for path in ({str(ro / "data.txt")!r}, {str(ro / "new.txt")!r}, "/usr/evil",
                     "{os.path.dirname(os.__file__)}/evil.py", {str(REPO / "evil")!r}, "/etc/evil"):
            try:
                with open(path, "w") as f:
                    f.write("x")
                report[path] = "written"
            except OSError as exc:
                report[path] = type(exc).__name__
        for path in ("/tmp/private.txt", {str(rw / "out.txt")!r}):
            with open(path, "w") as f:
                f.write("ok")
        print(json.dumps(report))
        """,
        ro_paths=[ro],
        rw_dir=rw,
    )
    assert result.ok, result.stderr
    report = json.loads(result.stdout)
    # a path under /tmp lands in the sandbox's private tmpfs (checked on the host below)
    assert not [p for p, v in report.items() if v == "written" and not p.startswith("/tmp/")], report
    assert (ro / "data.txt").read_text() == "data" and not (ro / "new.txt").exists()
    assert (rw / "out.txt").read_text() == "ok"
    assert not Path("/tmp/private.txt").exists() and not (REPO / "evil").exists()


def test_forged_bwrap_message_is_not_a_spawn_error(run_script: Runner) -> None:
    """Spawn errors are not charged to a program: the child must not be able to fake one."""
    result = run_script("import sys\nprint('bwrap: execvp: fake', file=sys.stderr)\nsys.exit(1)")
    assert result.outcome == "exited" and result.exit_code == 1


def test_missing_ro_path_is_a_spawn_error(run_script: Runner, tmp_path: Path) -> None:
    result = run_script("print('never')", ro_paths=[tmp_path / "missing"])
    assert result.outcome == "spawn_error"
    assert "missing" in result.message


def test_abstract_unix_socket_is_unreachable(run_script: Runner) -> None:
    """Abstract unix sockets live in the network namespace: the host's must be out of reach."""
    name = f"\0aiforml-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(1)
    server.setblocking(False)
    try:
        result = run_script(
            f"""
            import socket
            try:
                socket.socket(socket.AF_UNIX).connect({name!r})
                print("connected")
            except OSError as exc:
                print(type(exc).__name__)
            """
        )
        assert result.ok and result.stdout.strip() == "ConnectionRefusedError"
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_only_bound_dev_shm_files_are_visible(run_script: Runner) -> None:
    shm = Path(tempfile.mkdtemp(prefix="aiforml-test-", dir="/dev/shm"))
    try:
        (shm / "data.npy").write_bytes(b"bound")
        (shm / "labels.npy").write_bytes(b"secret labels")
        result = run_script(
            f"""
            import os
            print(open({str(shm / "data.npy")!r}).read(), os.listdir({str(shm)!r}), os.listdir("/dev/shm"))
            """,
            ro_paths=[shm / "data.npy"],
        )
        assert result.ok, result.stderr
        assert result.stdout.split() == ["bound", "['data.npy']", f"['{shm.name}']"]
    finally:
        shutil.rmtree(shm)


def test_dangerous_syscalls_are_denied(run_script: Runner, sandbox: Sandbox) -> None:
    """Tracing, BPF, io_uring, keyrings, userfaultfd, namespaces: EPERM under the filter."""
    if "seccomp" not in sandbox.limits:
        pytest.skip("libseccomp unavailable: no seccomp filter")
    result = run_script(
        """
        import ctypes, json
        libc = ctypes.CDLL(None, use_errno=True)
        calls = {"ptrace": (101, 0, 0, 0, 0), "bpf": (321, 0, 0, 0), "keyctl": (250, 0, 0),
                 "io_uring_setup": (425, 8, 0), "userfaultfd": (323, 0), "unshare": (272, 0x20000),
                 "perf_event_open": (298, 0, 0, -1, -1, 0)}
        report = {}
        for name, args in calls.items():
            rc = libc.syscall(*args)
            report[name] = "allowed" if rc >= 0 else ctypes.get_errno()
        print(json.dumps(report))
        """
    )
    assert result.ok, result.stderr
    report = json.loads(result.stdout)
    assert report == dict.fromkeys(report, errno.EPERM), report


def test_traps_left_in_rw_dir_are_defused(run_script: Runner, tmp_path: Path) -> None:
    """Symlinks to host files, FIFOs and set-uid files must not reach the trusted reader."""
    labels = tmp_path / "labels.npy"
    labels.write_bytes(b"validation targets")
    rw = tmp_path / "rw"
    result = run_script(
        f"""
        import os
        os.symlink({str(labels)!r}, "predictions.npy")
        os.makedirs("sub/deeper")
        os.symlink("/", "sub/root")
        os.mkfifo("sub/deeper/status.json")
        with open("tool", "w") as f:
            f.write("#!/bin/sh")
        os.chmod("tool", 0o4755)
        with open("ok.txt", "w") as f:
            f.write("fine")
        """
    )
    assert result.ok, result.stderr
    assert not (rw / "predictions.npy").is_symlink() and not (rw / "predictions.npy").exists()
    assert not (rw / "sub" / "root").is_symlink()
    assert not (rw / "sub" / "deeper" / "status.json").exists()
    assert (rw / "tool").stat().st_mode & 0o7777 == 0o755
    assert (rw / "ok.txt").read_text() == "fine"
    assert "predictions.npy" in result.message


def test_a_program_finds_nothing_a_previous_one_left(
    run_script: Runner, sandbox: Sandbox, tmp_path: Path, marker: str, leftovers: Leftovers
) -> None:
    """Run 1 leaves a process, files in /tmp, /dev/shm and its folder, and held data; run 2 finds none."""
    first, second, data = tmp_path / "first", tmp_path / "second", tmp_path / "data"
    for folder in (first, second, data):
        folder.mkdir()
    (data / "later_eras.npy").write_bytes(b"the first program's data")
    left = run_script(
        f"""
        import os, time
        open("/tmp/left-{marker}", "w").write("tmp")
        open("/dev/shm/left-{marker}", "w").write("shm")
        open({str(first / "left.txt")!r}, "w").write(open({str(data / "later_eras.npy")!r}).read())
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.closerange(0, 1024)
                while True:
                    time.sleep(0.1)
            os._exit(0)
        print("left", os.getpid())
        """,
        ro_paths=[data], rw_dir=first,
    )  # fmt: skip
    assert left.ok and "left" in left.stdout, left.stderr
    assert (first / "left.txt").read_text() == "the first program's data"  # the parent reads its folder
    look = run_script(
        f"""
        import json, os
        found = [p for p in ("/tmp/left-{marker}", "/dev/shm/left-{marker}", {str(first)!r},
                             {str(first / "left.txt")!r}, {str(data)!r}) if os.path.exists(p)]
        mount_points = {str(second)!r}.split("/")  # the folders leading to its own folder
        found += [f"/tmp: {{n}}" for n in os.listdir("/tmp") if n not in mount_points]
        found += [f"/dev/shm: {{n}}" for n in os.listdir("/dev/shm") if n not in mount_points]
        found += [f"folder: {{n}}" for n in os.listdir({str(tmp_path)!r}) if n != "second"]
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
        print(json.dumps({{"found": found, "pids": pids}}))
        """,
        rw_dir=second,
    )  # fmt: skip
    assert look.ok, look.stderr
    seen = json.loads(look.stdout)
    assert seen["found"] == []
    assert len(seen["pids"]) <= 2  # at most bwrap's init and the shell of a spawned run: no daemon
    assert leftovers(marker) == []


def test_proc_sys_is_read_only_and_each_run_draws_fresh_randomness(run_script: Runner) -> None:
    """A run cannot write the kernel's settings (its uid may be the host's root, which the sysctl
    files trust), and two runs do not share NumPy's random stream."""
    code = """
        import numpy as np
        setting = "/proc/sys/vm/swappiness"  # global; the same value is written back, if at all
        try:
            value = open(setting).read()
            open(setting, "w").write(value)
            print("wrote")
        except OSError as exc:
            print(type(exc).__name__)
        print(np.random.random())
        """
    first, second = run_script(code), run_script(code)
    assert first.ok and second.ok, first.stderr + second.stderr
    assert first.stdout.split()[0] in ("PermissionError", "OSError", "FileNotFoundError")
    assert first.stdout.split()[1] != second.stdout.split()[1]


def test_no_namespace_of_its_own_through_clone_and_no_unmounting(run_script: Runner, sandbox: Sandbox) -> None:
    """clone() with a namespace flag is EPERM, clone3 ENOSYS, unmounting EPERM: a program cannot
    make a user namespace of its own (full capabilities there) nor uncover what its mounts hide."""
    if "seccomp" not in sandbox.limits:
        pytest.skip("libseccomp unavailable: no seccomp filter")
    result = run_script(
        """
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        report = {}
        for name, flags in {"newuser": 0x10000000, "newns": 0x20000, "newpid": 0x20000000,
                            "newnet": 0x40000000}.items():
            rc = libc.syscall(56, flags | 17, 0, 0, 0, 0)  # clone(flags | SIGCHLD), fork-like
            if rc == 0:
                os._exit(0)
            report[name] = "allowed" if rc > 0 else ctypes.get_errno()
        rc = libc.syscall(435, 0, 0)  # clone3
        report["clone3"] = "allowed" if rc >= 0 else ctypes.get_errno()
        for target in (b"/tmp", b"/proc"):
            rc = libc.umount2(target, 2)  # MNT_DETACH
            report[target.decode()] = "allowed" if rc == 0 else ctypes.get_errno()
        print(json.dumps(report))
        """
    )
    assert result.ok, result.stderr
    report = json.loads(result.stdout)
    assert report == {"newuser": errno.EPERM, "newns": errno.EPERM, "newpid": errno.EPERM,
                      "newnet": errno.EPERM, "clone3": errno.ENOSYS, "/tmp": errno.EPERM,
                      "/proc": errno.EPERM}, report
