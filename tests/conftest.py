"""Session-wide test setup: a pinned data secret, so generated data is the same every run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiforml.data.secret import SECRET_ENV

TEST_SECRET = "00112233445566778899aabbccddeeff"  # fixed: the suite's data must not vary by machine


@pytest.fixture(scope="session", autouse=True)
def pinned_data_secret(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$AIFORML_DATA_SECRET_FILE names a fixed secret for every test and its subprocesses."""
    path = tmp_path_factory.mktemp("secret") / "data-secret"
    path.write_text(TEST_SECRET + "\n")
    path.chmod(0o600)
    old = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = str(path)
    yield path
    if old is None:
        os.environ.pop(SECRET_ENV, None)
    else:
        os.environ[SECRET_ENV] = old
