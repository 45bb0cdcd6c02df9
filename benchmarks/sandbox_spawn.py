"""What isolation costs per evaluation: spawn overhead and heavy imports inside the sandbox.

Run: ``.venv/bin/python benchmarks/sandbox_spawn.py [--repeats 5]``. Prints two Markdown
tables (medians over the repeats):

1. spawn to the first line of user code, and spawn to the end of a ``pass`` program, for a
   plain ``subprocess.run``, the fallback ``Sandbox(isolation="none")`` (gate, cgroups,
   rlimits, setpriv, and Landlock + seccomp through a second interpreter start where the
   kernel has Landlock) and ``Sandbox`` under bubblewrap;
2. ``import numpy, pandas, lightgbm, sklearn`` inside the child: plain, under bubblewrap, under
   bubblewrap with ``-X frozen_modules=off`` (the interpreter's default is on), and under
   bubblewrap with no usable ``.pyc`` (``PYTHONPYCACHEPREFIX`` pointed at an empty dir: the
   cost a read-only venv without compiled bytecode would pay on every evaluation), plus the
   share of those packages' modules that have a ``.pyc`` ahead of time.

Times on a shared 2-core machine are noisy; compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiforml.config import SandboxConfig
from aiforml.sandbox import Sandbox

FIRST_LINE = "import time; print(time.monotonic())"
IMPORTS = (
    "import time; t = time.perf_counter()\n"
    "import numpy, pandas, lightgbm, sklearn\n"
    "print(time.perf_counter() - t)"
)
PACKAGES = ("numpy", "pandas", "lightgbm", "sklearn")
Launcher = Callable[[list[str]], tuple[str, float]]  # argv -> (stdout, wall seconds)


def plain(argv: list[str]) -> tuple[str, float]:
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return done.stdout, time.monotonic() - start


def sandboxed(box: Sandbox, rw_dir: Path, env: dict[str, str] | None = None) -> Launcher:
    def launch(argv: list[str]) -> tuple[str, float]:
        start = time.monotonic()
        result = box.run(argv, ro_paths=[], rw_dir=rw_dir, env=env)
        if not result.ok:
            raise RuntimeError(f"{result.outcome}: {result.message}\n{result.stderr}")
        return result.stdout, time.monotonic() - start

    return launch


def spawn_row(name: str, launch: Launcher, repeats: int) -> str:
    first, total = [], []
    for _ in range(repeats):
        start = time.monotonic()
        stdout, wall = launch([sys.executable, "-c", FIRST_LINE])
        first.append(float(stdout) - start)
        total.append(wall)
    return f"| {name} | {_ms(first)} | {_ms(total)} |"


def import_row(name: str, launch: Launcher, repeats: int, flags: tuple[str, ...] = ()) -> str:
    inside, total = [], []
    for _ in range(repeats):
        stdout, wall = launch([sys.executable, *flags, "-c", IMPORTS])
        inside.append(float(stdout))
        total.append(wall)
    return f"| {name} | {statistics.median(inside):.2f} | {statistics.median(total):.2f} |"


def pyc_coverage() -> str:
    """Share of the packages' .py modules with a matching .pyc in __pycache__."""
    sources = compiled = 0
    tag = sys.implementation.cache_tag
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec and spec.origin, package
        for source in Path(spec.origin).parent.rglob("*.py"):
            sources += 1
            compiled += (source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc").exists()
    return f"{compiled}/{sources} modules of {', '.join(PACKAGES)} have a .pyc"


def _ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cfg = SandboxConfig(wall_s=120, memory_mb=4096)
    bwrap_box, fallback_box = Sandbox(cfg), Sandbox(SandboxConfig(isolation="none"))
    if bwrap_box.isolation != "bwrap":
        sys.exit(f"bubblewrap cannot run here: {bwrap_box.isolation}")
    with tempfile.TemporaryDirectory(prefix="aiforml-bench-") as tmp:
        rw = Path(tmp)
        in_box = sandboxed(bwrap_box, rw)
        print(f"Python {sys.version.split()[0]}, {args.repeats} repeats, medians; limits: {bwrap_box.limits}\n")
        print("| launcher | spawn to first line (ms) | spawn to reaped, `pass` (ms) |")
        print("|---|---|---|")
        print(spawn_row("subprocess.run", plain, args.repeats))
        fallback_name = f"Sandbox, isolation=none ({fallback_box.isolation.split()[0]} fallback)"
        print(spawn_row(fallback_name, sandboxed(fallback_box, rw), args.repeats))
        print(spawn_row("Sandbox, bwrap", in_box, args.repeats))
        print("\n| `import numpy, pandas, lightgbm, sklearn` | import (s) | whole run (s) |")
        print("|---|---|---|")
        print(import_row("subprocess.run", plain, args.repeats))
        print(import_row("Sandbox, bwrap", in_box, args.repeats))
        print(import_row("Sandbox, bwrap, -X frozen_modules=off", in_box, args.repeats, ("-X", "frozen_modules=off")))
        no_pyc = sandboxed(bwrap_box, rw, env={"PYTHONPYCACHEPREFIX": "/tmp/no-pyc"})
        print(import_row("Sandbox, bwrap, no usable .pyc", no_pyc, args.repeats))
        print(f"\n{pyc_coverage()}")


if __name__ == "__main__":
    main()
