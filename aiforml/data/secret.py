"""The per-installation data secret: why generated validation and test data cannot be rebuilt.

    secret = load_secret(secret_path(cfg.cache_dir))   # 16 random bytes, created once
    generate(spec, seed, secret=secret)                  # the market path needs seed AND secret

The synthetic generators are public numpy code and their seed is in the config, so a
program that reran them inside the sandbox rebuilt every validation row (validation Sharpe
6.9). The market path (every return, every universe, every row id) therefore also draws on
128 random bits made once per installation with ``secrets`` and kept in a file of mode
0600 beside the data cache (``<cache dir>/data-secret``; ``$AIFORML_DATA_SECRET_FILE``
names another file, which is how tests pin it). The secret itself goes nowhere else: not
into the config, logs, archive, checkpoints or tool output. The data's version carries
``secret_digest``, a one-way hash, so caches differ per secret. The synthetic design (which
latents feed which features, the planted premia) stays the seed's alone, so statistics per
seed stay comparable across installations; a program can rebuild it, which tells it the
planted structure but no era's returns, universe or targets. Whoever can read this file
(or the data cache beside it) has the data: the bubblewrap sandbox binds neither; with
``env.sandbox.isolation: none`` nothing keeps a child from reading them.

Responsible for: finding, creating (atomically, race-free) and reading the secret file,
and the digest. Not responsible for: the generators that use it (``synthetic.py``,
``price_synthetic.py``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

from aiforml.data.cache import default_cache_dir

SECRET_ENV = "AIFORML_DATA_SECRET_FILE"
SECRET_FILE = "data-secret"
SECRET_BYTES = 16  # 128 bits


def secret_path(cache_dir: str | Path | None = None) -> Path:
    """``$AIFORML_DATA_SECRET_FILE`` when set, else ``data-secret`` in the data cache directory."""
    if os.environ.get(SECRET_ENV):
        return Path(os.environ[SECRET_ENV]).expanduser()
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / SECRET_FILE


def load_secret(path: Path) -> bytes:
    """The secret kept at ``path``; created there (mode 0600) the first time it is asked for."""
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"data secret {path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"data secret {path} must hold {2 * SECRET_BYTES} hex digits; delete it to make a new one")
    return secret


def _create(path: Path) -> None:
    """Write a fresh secret to a private temporary file, then link it into place: a process
    racing us either wins (and we read its secret) or loses; nobody sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".data-secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(SECRET_BYTES) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def secret_digest(secret: bytes) -> str:
    """A one-way hash of the secret (12 hex digits): safe in versions and cache keys."""
    return hashlib.sha256(b"aiforml-data-secret:" + secret).hexdigest()[:12]


def secret_entropy(seed: int, secret: bytes) -> list[int]:
    """Seed material of a generator that needs both the config's seed and the secret."""
    return [seed, int.from_bytes(secret, "big")]
