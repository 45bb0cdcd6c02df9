"""A matrix held as two files, mapped as one: the training rows' file and the rows after it."""

import mmap

import numpy as np
import pytest

from aiforml.pipeline.handoff import view_matrix, write_view
from aiforml.pipeline.harness import JOINED_HEAD, JOINED_REST, map_joined, view_features


@pytest.mark.parametrize(("rows", "head_rows", "columns", "dtype"), [
    (10, 3, 7, np.int8),           # the head inside its first page: all of it goes again into the rest
    (5000, 4000, 37, np.int8),     # many pages, a partial last one
    (600, 512, 8, np.float64),     # a float matrix (the trading task's)
    (40, 0, 5, np.int8),           # no head rows: the header alone
    (64, 64, 3, np.int8),          # the head is the whole matrix: the rest is its last page only
])
def test_the_joined_matrix_is_the_matrix(tmp_path, rows, head_rows, columns, dtype):
    matrix = (np.arange(rows * columns) % 251).astype(dtype).reshape(rows, columns)
    head = tmp_path / "train" / "features.npy"
    head.parent.mkdir()
    np.save(head, matrix[:head_rows])
    folder = write_view(tmp_path / "view", ({"features": matrix, "eras": np.zeros(rows, np.int32)}, {}), head=head)
    assert (folder / JOINED_HEAD).stat().st_ino == head.stat().st_ino  # a link: the head rows held once
    assert (folder / JOINED_REST).stat().st_size < mmap.PAGESIZE + (rows - head_rows) * matrix[:1].nbytes
    shared = view_matrix(folder)
    np.testing.assert_array_equal(shared, matrix)
    assert shared.dtype == dtype and not shared.flags.writeable
    # a child's copy-on-write map: its writes stay its own, in both files' pages
    child = view_features(folder)
    child[:] = 1
    np.testing.assert_array_equal(view_features(folder, writable=False), matrix)
    np.testing.assert_array_equal(np.load(head), matrix[:head_rows])


def test_a_rest_file_of_torn_rows_or_a_head_of_another_shape_is_refused(tmp_path):
    matrix = np.arange(400, dtype=np.int8).reshape(100, 4)
    head = tmp_path / "head.npy"
    np.save(head, matrix[:60])
    folder = write_view(tmp_path / "view", ({"features": matrix}, {}), head=head)
    with open(folder / JOINED_REST, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="whole rows"):
        map_joined(folder / JOINED_HEAD, folder / JOINED_REST)
    with pytest.raises(ValueError, match="not the first rows"):
        write_view(tmp_path / "other", ({"features": matrix[:, :3]}, {}), head=head)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(matrix[:60]))
    with pytest.raises(ValueError, match="plain C-ordered"):
        map_joined(tmp_path / "fortran.npy", folder / JOINED_REST)


def test_the_mapping_outlives_the_views_taken_of_it(tmp_path):
    matrix = np.arange(30_000, dtype=np.int8).reshape(3000, 10)
    head = tmp_path / "head.npy"
    np.save(head, matrix[:2000])
    folder = write_view(tmp_path / "view", ({"features": matrix}, {}), head=head)
    tail = view_matrix(folder)[2500:]
    import gc
    gc.collect()  # the whole matrix is gone; its slice keeps the mapping
    np.testing.assert_array_equal(tail, matrix[2500:])
