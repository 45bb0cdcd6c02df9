"""Walking and defusing a tree a child built: any depth, any name length, links never followed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aiforml.pipeline.childio import remove_tree
from aiforml.sandbox.paths import defuse
from aiforml.sandbox.tree import walk_tree

NAME = "d" * 200  # 1500 of these make a path of 300 kB: no path-based call reaches the bottom
DEPTH = 1500  # past Python's recursion limit too


def chain_bottom(top: Path, depth: int = DEPTH) -> int:
    """Make a chain of ``depth`` folders under ``top``; an open descriptor of the deepest one."""
    here = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(NAME, dir_fd=here)
        below = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
        os.close(here)
        here = below
    return here


@pytest.fixture
def top(tmp_path):
    """The child's folder; removed here whatever the test did (pytest's clean-up stops at PATH_MAX)."""
    folder = tmp_path / "rw"
    folder.mkdir()
    yield folder
    assert remove_tree(folder) == []


def test_walk_visits_every_entry_of_a_deep_chain_without_following_links(tmp_path, top):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    bottom = chain_bottom(top)
    os.symlink(outside, "link", dir_fd=bottom)
    os.close(bottom)
    seen: list[str] = []
    left: list[str] = []

    def visit(dir_fd: int, entry: os.DirEntry) -> bool:
        seen.append(entry.name)
        return entry.is_dir(follow_symlinks=False)

    assert walk_tree(top, visit, lambda parent_fd, name: left.append(name)) == []
    assert seen.count(NAME) == DEPTH and seen[-1] == "link" and "secret" not in seen
    assert left == [NAME] * DEPTH  # every folder left once, deepest first


def test_defuse_reaches_the_bottom_of_a_deep_chain(top):
    bottom = chain_bottom(top)
    os.symlink("/etc/passwd", "predictions.npy", dir_fd=bottom)
    os.mkfifo("result.json", dir_fd=bottom)
    fd = os.open("tool", os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=bottom)
    os.fchmod(fd, 0o4755)
    os.close(fd)
    assert sorted(defuse(top)) == ["predictions.npy", "result.json"]
    assert sorted(os.listdir(bottom)) == ["tool"]
    assert stat.S_IMODE(os.stat("tool", dir_fd=bottom).st_mode) == 0o755
    os.close(bottom)


def test_defuse_opens_closed_folders_and_never_raises(as_user, shared_dir):
    def build_and_defuse() -> tuple[list[str], list[str], int]:
        rw = shared_dir / "rw"
        (rw / "locked").mkdir(parents=True)
        os.symlink("/etc/passwd", rw / "locked" / "oof.npy")
        os.chmod(rw / "locked", 0)
        os.chmod(rw, 0)  # the child may close its own folder too
        removed = defuse(rw)
        return removed, os.listdir(rw / "locked"), stat.S_IMODE(os.stat(rw / "locked").st_mode)

    removed, left, mode = as_user(54321, build_and_defuse)
    assert removed == ["oof.npy"] and left == [] and mode == 0o700


def test_defuse_of_a_missing_folder_says_so_without_raising(tmp_path, caplog):
    assert defuse(tmp_path / "gone") == []
    assert "gone" in caplog.text
