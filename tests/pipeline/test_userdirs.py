"""Each user's job folders and hand-offs live in their own private folder; a planted one is refused."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from aiforml.config import SandboxConfig
from aiforml.pipeline.userdirs import UnsafeFolderError, folder_mode, private_root
from aiforml.sandbox import Sandbox, fallback

OTHER_UIDS = (54321, 54322)  # no such users need exist: the kernel only needs the numbers


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_private_root_is_made_closed_to_others(shared_dir):
    uid = os.geteuid()
    evals = private_root("evals", base=shared_dir)
    assert evals == shared_dir / f"aiforml-{uid}" / "evals"
    for folder in (evals.parent, evals):
        assert os.lstat(folder).st_uid == uid
        assert mode(folder) == folder_mode(uid)
        assert mode(folder) & 0o066 == 0  # nobody else reads or writes, whatever the umask
    assert private_root("evals", base=shared_dir) == evals  # reused


@pytest.mark.parametrize("plant", ["symlink", "wide mode", "kind symlink"])
def test_a_planted_folder_is_refused_with_the_fix(shared_dir, tmp_path, plant):
    parent = shared_dir / f"aiforml-{os.geteuid()}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if plant == "symlink":
        parent.symlink_to(elsewhere)
        bad = parent
    elif plant == "wide mode":
        parent.mkdir()
        os.chmod(parent, 0o777)
        bad = parent
    else:
        parent.mkdir(mode=0o700)
        (parent / "handoff").symlink_to(elsewhere)
        bad = parent / "handoff"
    with pytest.raises(UnsafeFolderError) as caught:
        private_root("handoff", base=shared_dir)
    message = str(caught.value)
    assert str(bad) in message and "rm -rf" in message
    assert not any(elsewhere.iterdir())


def test_two_users_do_not_collide(as_user, shared_dir):
    def make() -> tuple[str, str]:
        roots = [private_root(kind, base=shared_dir) for kind in ("evals", "handoff")]
        (roots[1] / "meta.json").write_text("{}")
        return tuple(str(r) for r in roots)

    first, second = (as_user(uid, make) for uid in OTHER_UIDS)
    assert first != second
    for uid, roots in zip(OTHER_UIDS, (first, second), strict=True):
        for root in roots:
            assert os.lstat(root).st_uid == uid and mode(root) == 0o700

    def snoop() -> str:  # the second user, at the first user's hand-off
        try:
            os.listdir(first[1])
        except PermissionError:
            return "refused"
        return "listed"

    assert as_user(OTHER_UIDS[1], snoop) == "refused"


def test_a_folder_planted_by_another_user_is_refused(as_user, shared_dir):
    victim, planter = OTHER_UIDS

    def plant() -> None:  # the planter makes the victim's folder first, open to itself
        folder = shared_dir / f"aiforml-{victim}"
        folder.mkdir(mode=0o700)
        (folder / "handoff").mkdir(mode=0o700)

    def victim_root() -> str:
        try:
            return str(private_root("handoff", base=shared_dir))
        except UnsafeFolderError as exc:
            return f"refused: {exc}"

    as_user(planter, plant)
    outcome = as_user(victim, victim_root)
    assert outcome.startswith("refused:"), outcome
    assert f"aiforml-{victim} is owned by uid {planter}" in outcome and "rm -rf" in outcome


def test_a_child_run_as_nobody_reaches_its_job_folder_and_the_handoff(shared_dir):
    """Root's folders are 0711 so that the fallback's uid-65534 child can pass through them."""
    system_python = "/usr/bin/python3"
    if os.geteuid() != 0 or not fallback.nobody_can_run(system_python):
        pytest.skip("needs root and a system python that uid 65534 can run")
    box = Sandbox(SandboxConfig(isolation="none", wall_s=30.0, max_procs=8), use_cgroups=False)
    if not fallback.runs_as_nobody(fallback.prefix(system_python)):
        pytest.skip("the fallback does not run this interpreter as nobody here")
    data = private_root("handoff", base=shared_dir) / "split"
    data.mkdir()
    (data / "meta.json").write_text('{"n_train": 3}')
    os.chmod(data, 0o755)  # as build_handoff leaves it
    job = Path(tempfile.mkdtemp(prefix="job-", dir=private_root("evals", base=shared_dir)))
    code = (f"import os; open({str(job / 'out.txt')!r}, 'w').write(open({str(data / 'meta.json')!r}).read())\n"
            "try:\n"
            f"    print(os.listdir({str(job.parent)!r}))\n"  # passing through is all it may do
            "except PermissionError:\n"
            "    print('listing refused', os.getuid())\n")
    result = box.run([system_python, "-c", code], ro_paths=[data], rw_dir=job)
    assert result.ok, result.stderr
    assert result.stdout.strip() == "listing refused 65534"
    assert (job / "out.txt").read_text() == '{"n_train": 3}'
