"""The child's environment: a minimal, fixed set of variables, nothing inherited.

Responsible for: PATH, HOME/TMPDIR, a UTF-8 locale, unbuffered output without bytecode
writes (the venv is read-only inside), and every BLAS/OpenMP/Polars thread count pinned to
``threads``. Not responsible for: the caller's extra variables (merged on top by the
sandbox) or bwrap's own environment (``bwrap.LAUNCHER_ENV``).
"""

from __future__ import annotations

import os

THREAD_VARS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "POLARS_MAX_THREADS", "RAYON_NUM_THREADS",
    # joblib's cpu_count (LightGBM's and scikit-learn's default n_jobs) reads this; without
    # it LightGBM starts one thread per logical core whatever OMP_NUM_THREADS says.
    "LOKY_MAX_CPU_COUNT",
)  # fmt: skip


def minimal(executable: str, *, home: str, threads: int) -> dict[str, str]:
    """The whole environment of a child running ``executable``."""
    bindir = os.path.dirname(executable) if os.path.isabs(executable) else ""
    env = {
        "PATH": ":".join(p for p in (bindir, "/usr/local/bin", "/usr/bin", "/bin") if p),
        "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return env
