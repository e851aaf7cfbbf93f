"""The MXNet NDArray list format of ``model_algo-1`` and the ``model.tar.gz`` around it."""

import gzip
import io
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from offline.standin.ndarray import (
    read_model_tar_gz,
    read_ndarray_list,
    write_model_tar_gz,
    write_ndarray_list,
)


def test_exact_byte_layout_of_one_kmeans_array():
    centroids = np.array([[1.0, 2.0], [3.0, 4.5], [-1.0, 0.25]], dtype=np.float32)
    data = write_ndarray_list([centroids])
    expected = (
        struct.pack("<QQQ", 0x112, 0, 1)
        + struct.pack("<I", 0xF993FAC9)
        + struct.pack("<ii", 0, 2)  # dense storage, ndim
        + struct.pack("<qq", 3, 2)  # dims
        + struct.pack("<iii", 1, 0, 0)  # cpu, device 0, float32
        + centroids.astype("<f4").tobytes()
        + struct.pack("<Q", 0)  # no names
    )
    assert data == expected
    (back,) = read_ndarray_list(data)
    assert back.dtype == np.float32 and back.shape == (3, 2)
    np.testing.assert_array_equal(back, centroids)


def test_round_trip_of_several_arrays_and_float64_input():
    arrays = [np.arange(6, dtype=np.float64).reshape(2, 3), np.array([0.5], dtype=np.float32), np.ones((2, 2, 2))]
    back = read_ndarray_list(write_ndarray_list(arrays))
    assert [a.shape for a in back] == [(2, 3), (1,), (2, 2, 2)]
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(b, a.astype(np.float32))


def test_names_are_accepted_and_ignored():
    data = write_ndarray_list([np.zeros((1, 2))])[:-8] + struct.pack("<QQ", 1, 3) + b"abc"
    (back,) = read_ndarray_list(data)
    assert back.shape == (1, 2)


def _good() -> bytes:
    return write_ndarray_list([np.ones((2, 3), dtype=np.float32)])


def _patch(data: bytes, offset: int, fmt: str, value) -> bytes:
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


@pytest.mark.parametrize(
    "data, message",
    [
        (_patch(_good(), 0, "<Q", 0x113), "list magic"),
        (_patch(_good(), 24, "<I", 0xF993FACB), "magic"),
        (_patch(_good(), 24, "<I", 0xF993FAC8), "dimensions 0"),  # V1 has no storage type: ndim is 0
        (_patch(_good(), 28, "<i", 2), "storage type 2 (csr)"),
        (_patch(_good(), 28, "<i", 1), "row_sparse"),
        (_patch(_good(), 60, "<i", 1), "dtype flag 1 (float64)"),
        (_patch(_good(), 60, "<i", 6), "dtype flag 6 (int64)"),
        (_good() + b"\0", "trailing garbage"),
        (_good()[:10], "truncated"),
        (_good()[:40], "truncated"),
        (_good()[:70], "truncated"),
        (_good()[:-8], "truncated"),
        (b"", "truncated"),
    ],
)
def test_malformed_ndarray_lists_are_refused_clearly(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_ndarray_list(data)


def test_model_tar_gz_round_trip():
    centroids = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    blob = write_model_tar_gz(centroids)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        assert tar.getnames() == ["model_algo-1"]
    np.testing.assert_array_equal(read_model_tar_gz(blob), centroids)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model_algo-1", write_ndarray_list([np.zeros((2, 2))]))
    return buf.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.mark.parametrize(
    "blob, message",
    [
        (_zip(), "zip archive"),
        (b"not an archive at all", "not gzip-compressed"),
        (b"", "empty"),
        (gzip.compress(b"plain text, not a tar", mtime=0), "not a tar archive"),
        (_tar_gz({"model.json": b"{}"}), "no model_algo-1"),
        (_tar_gz({"model_algo-1": b"garbage"}), "not a valid MXNet NDArray list"),
        (_tar_gz({"model_algo-1": write_ndarray_list([np.zeros(3)])}), "expected \\(k, feature_dim\\)"),
        (_tar_gz({"model_algo-1": write_ndarray_list([np.zeros((2, 2)), np.zeros((2, 2))])}), "exactly 1"),
    ],
)
def test_malformed_model_archives_are_refused_clearly(blob, message):
    with pytest.raises(ValueError, match=message):
        read_model_tar_gz(blob)


def test_model_archive_with_leading_dot_slash_member_is_read():
    payload = write_ndarray_list([np.ones((2, 2))])
    np.testing.assert_array_equal(read_model_tar_gz(_tar_gz({"./model_algo-1": payload})), np.ones((2, 2)))


@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
def test_every_layout_mxnet_loads_round_trips(version):
    centroids = (np.arange(24, dtype=np.float32).reshape(6, 4) - 7.5) / 3
    for names in (None, ["centroids"]):
        (back,) = read_ndarray_list(write_ndarray_list([centroids], version=version, names=names))
        np.testing.assert_array_equal(back, centroids)


def test_the_layouts_differ_only_in_their_headers():
    c = np.ones((6, 4), dtype=np.float32)
    body = 12 + 4 * c.size  # device type, device id, dtype flag, values
    sizes = {v: len(write_ndarray_list([c], version=v)) - 24 - 8 for v in ("legacy", "v1", "v2", "v3")}
    assert sizes == {
        "legacy": 4 + 2 * 4 + body,
        "v1": 4 + 4 + 2 * 8 + body,
        "v2": 4 + 4 + 4 + 2 * 8 + body,
        "v3": 4 + 4 + 4 + 2 * 8 + body,
    }
    assert write_ndarray_list([c], version="v3")[24:28] == struct.pack("<I", 0xF993FACA)
