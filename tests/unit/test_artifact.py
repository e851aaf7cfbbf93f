"""The portable K-Means artifact reader, checked against the stand-in's writer and hand-built edge cases."""

from __future__ import annotations

import gzip
import io
import re
import struct
import tarfile
import zipfile
from pathlib import Path

import boto3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from kmeans_pipeline.errors import ModelArtifactError, PipelineError
from kmeans_pipeline.model import artifact
from kmeans_pipeline.model.artifact import centroids_to_json, read_centroids
from offline.standin.ndarray import read_model_tar_gz, write_model_tar_gz, write_ndarray_list
from testkit.aws import REGION

BUCKET = "artifact-test"
CENTROIDS = np.array([[1.0, 2.0, 3.0], [-4.5, 0.25, 1e-7], [3.4e38, -3.4e38, 0.0]], dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------
# Hand-built artifacts (written here from the layout, not with the stand-in's writer)
# ------------------------------------------------------------------------------------------------------------


def array_bytes(shape=(2, 3), *, magic=0xF993FAC9, storage=0, dtype_flag=0, values: bytes | None = None) -> bytes:
    n = int(np.prod(shape)) if shape else 0
    if values is None:
        values = np.arange(n, dtype="<f4").tobytes()
    return (
        struct.pack("<Iii", magic, storage, len(shape))
        + struct.pack(f"<{len(shape)}q", *shape)
        + struct.pack("<iii", 1, 0, dtype_flag)
        + values
    )


def list_bytes(arrays: list[bytes], *, magic=0x112, names: list[bytes] | None = None) -> bytes:
    names = names or []
    out = struct.pack("<QQQ", magic, 0, len(arrays)) + b"".join(arrays) + struct.pack("<Q", len(names))
    for name in names:
        out += struct.pack("<Q", len(name)) + name
    return out


def tar_bytes(members: dict[str, bytes], *, gz: bool = True, dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def error_of(source, **kwargs) -> str:
    with pytest.raises(ModelArtifactError) as err:
        read_centroids(source, **kwargs)
    return str(err.value)


# ------------------------------------------------------------------------------------------------------------
# Round trips with the stand-in ("SageMaker") writer
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k,dim", [(1, 1), (2, 1), (3, 2), (5, 7), (17, 3), (64, 40), (1, 513)])
def test_round_trip_with_the_standins_writer(k, dim, tmp_path):
    centroids = np.random.default_rng(k * 1000 + dim).normal(scale=50, size=(k, dim)).astype(np.float32)
    tgz = write_model_tar_gz(centroids)
    bare = write_ndarray_list([centroids])
    (tmp_path / "model.tar.gz").write_bytes(tgz)
    (tmp_path / "model_algo-1").write_bytes(bare)
    for source in (tgz, bare, tmp_path / "model.tar.gz", str(tmp_path / "model.tar.gz"), tmp_path / "model_algo-1"):
        got = read_centroids(source)
        assert got.dtype == np.float32 and got.shape == (k, dim) and got.flags.writeable
        assert got.tobytes() == centroids.tobytes()  # bit for bit, -0.0 and all
    # Both readers agree on both writers' artifacts.
    np.testing.assert_array_equal(read_model_tar_gz(tgz), read_centroids(tgz))
    np.testing.assert_array_equal(
        read_centroids(tar_bytes({"model_algo-1": list_bytes([array_bytes((k, dim))])})),
        read_model_tar_gz(tar_bytes({"model_algo-1": list_bytes([array_bytes((k, dim))])})),
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda k: st.integers(1, 12).flatmap(
            lambda d: st.lists(
                st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=k * d, max_size=k * d
            ).map(lambda v: np.array(v, dtype=np.float32).reshape(k, d))
        )
    )
)
def test_round_trip_of_any_finite_float32_centroids(centroids):
    assert read_centroids(write_model_tar_gz(centroids)).tobytes() == centroids.tobytes()


def test_exact_layout_written_by_hand_is_read():
    data = list_bytes([array_bytes((2, 3))])
    np.testing.assert_array_equal(read_centroids(data), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_other_containers_sagemaker_could_plausibly_produce():
    payload = write_ndarray_list([CENTROIDS])
    for data in (
        tar_bytes({"./model_algo-1": payload}),  # `tar -C dir -czf model.tar.gz .`
        tar_bytes({"model_algo-1": payload}, gz=False),  # plain tar
        tar_bytes({"notes.txt": b"x", "model_algo-1": payload}, dirs=("extra",)),
        gzip.compress(tar_bytes({"model_algo-1": payload}, gz=False)[:10240]) + b"\0" * 16,  # zero padding
        gzip.compress(payload),  # a gzipped bare model_algo-1
        list_bytes([array_bytes((3, 3), values=CENTROIDS.tobytes())], names=[b"centroids"]),  # a named array
    ):
        np.testing.assert_array_equal(read_centroids(data), CENTROIDS)
    # A multi-member gzip (e.g. concatenated by a streaming writer) is one stream.
    raw = tar_bytes({"model_algo-1": payload}, gz=False)
    np.testing.assert_array_equal(read_centroids(gzip.compress(raw[:700]) + gzip.compress(raw[700:])), CENTROIDS)


def test_centroids_to_json_is_exact_and_json_ready():
    import json

    doc = centroids_to_json(CENTROIDS)
    assert doc["k"] == 3 and doc["featureDim"] == 3
    back = json.loads(json.dumps(doc))
    assert np.array(back["centroids"], dtype=np.float32).tobytes() == CENTROIDS.tobytes()
    assert all(type(v) is float for row in doc["centroids"] for v in row)
    with pytest.raises(ValueError):
        centroids_to_json(np.zeros(3))


# ------------------------------------------------------------------------------------------------------------
# S3
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_s3_uri_with_a_given_and_a_lazily_created_client(s3):
    s3.put_object(Bucket=BUCKET, Key="models/run/output/model.tar.gz", Body=write_model_tar_gz(CENTROIDS))
    uri = f"s3://{BUCKET}/models/run/output/model.tar.gz"
    np.testing.assert_array_equal(read_centroids(uri, s3=s3), CENTROIDS)
    np.testing.assert_array_equal(read_centroids(uri), CENTROIDS)  # kmeans_pipeline.aws.client("s3")


def test_s3_problems_are_named(s3):
    message = error_of(f"s3://{BUCKET}/models/missing/model.tar.gz", s3=s3)
    assert f"s3://{BUCKET}/models/missing/model.tar.gz does not exist (NoSuchKey)" in message
    assert "NoSuchBucket" in error_of("s3://no-such-bucket-here/model.tar.gz", s3=s3)
    for uri in ("s3://", "s3://bucket-only", "s3://bucket/", "s3://bucket/prefix/"):
        assert "is not an s3://bucket/key URI" in error_of(uri, s3=s3)
    s3.put_object(Bucket=BUCKET, Key="zip/model.tar.gz", Body=_zip())
    assert error_of(f"s3://{BUCKET}/zip/model.tar.gz", s3=s3).startswith(f"s3://{BUCKET}/zip/model.tar.gz is a zip")


def test_s3_objects_over_the_limit_are_refused_before_reading(s3, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="big/model.tar.gz", Body=write_model_tar_gz(CENTROIDS))
    monkeypatch.setattr(artifact, "MAX_ARTIFACT_BYTES", 100)
    assert "over the 100-byte limit" in error_of(f"s3://{BUCKET}/big/model.tar.gz", s3=s3)


# ------------------------------------------------------------------------------------------------------------
# What is not a K-Means artifact
# ------------------------------------------------------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model_algo-1", write_ndarray_list([CENTROIDS]))
    return buf.getvalue()


def test_every_problem_is_a_model_artifact_error_of_the_pipeline():
    assert issubclass(ModelArtifactError, PipelineError)


def test_a_zip_is_named_as_such(tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(_zip())
    message = error_of(path)
    assert message == (f"{path} is a zip archive; SageMaker's K-Means artifact is a tar.gz holding model_algo-1")
    assert "zip archive" in error_of(gzip.compress(_zip()))


@pytest.mark.parametrize("wrap", ["bare", "tar.gz"])
def test_wrong_list_magic_is_shown_in_hex(wrap):
    data = list_bytes([array_bytes()], magic=0x113)
    if wrap == "tar.gz":
        message = error_of(tar_bytes({"model_algo-1": data}))
        assert message.startswith("model_algo-1 in the model artifact bytes")
        assert "wrong list magic 0x113" in message and "0x112" in message
    else:
        message = error_of(data)
        assert "list magic 0x113" in message and "0x112" in message
    assert "0x0" in error_of(b"\0" * 64)


@pytest.mark.parametrize("magic", [0xDEADBEEF, 0xF993FACB, 33])
def test_an_unknown_array_magic_is_named_with_the_ones_mxnet_writes(magic):
    message = error_of(tar_bytes({"model_algo-1": list_bytes([array_bytes(magic=magic)])}))
    assert f"unknown array magic {magic:#x} at offset 24" in message
    assert all(known in message for known in ("0xf993fac8", "0xf993fac9", "0xf993faca", "legacy"))


@pytest.mark.parametrize("storage,name", [(1, "row_sparse"), (2, "csr"), (-1, "undefined"), (7, "unknown")])
def test_sparse_storage_is_named(storage, name):
    message = error_of(list_bytes([array_bytes(storage=storage)]))
    assert f"{name} storage (type {storage})" in message and "dense" in message


@pytest.mark.parametrize(
    "flag,name", [(1, "float64"), (2, "float16"), (4, "int32"), (6, "int64"), (12, "bfloat16"), (99, "unknown")]
)
def test_dtypes_other_than_float32_are_named(flag, name):
    message = error_of(tar_bytes({"model_algo-1": list_bytes([array_bytes(dtype_flag=flag)])}))
    assert f"dtype is {name} (flag {flag})" in message and "float32" in message


@pytest.mark.parametrize("shape", [(6,), (1, 2, 3), ()])
def test_centroids_must_be_two_dimensional(shape):
    message = error_of(list_bytes([array_bytes(shape)]))
    assert f"the array is {len(shape)}-D with shape {shape}" in message and "(k, feature_dim)" in message


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (-1, 3)])
def test_empty_or_negative_shapes(shape):
    assert f"shape {shape}" in error_of(list_bytes([array_bytes(shape, values=b"")]))


def test_implausible_ndim_and_huge_shapes():
    assert "claims 1000 dimensions" in error_of(list_bytes([struct.pack("<Iii", 0xF993FAC9, 0, 1000)]))
    assert "more than any K-Means model" in error_of(list_bytes([array_bytes((2**31, 2**31), values=b"")]))


@pytest.mark.parametrize("count", [0, 2, 3])
def test_anything_but_exactly_one_array(count):
    arrays = [array_bytes() for _ in range(count)]
    message = error_of(tar_bytes({"model_algo-1": list_bytes(arrays)}))
    assert f"holds {count} arrays" in message and "exactly one" in message


def test_names_trailing_bytes_and_non_finite_values():
    assert "name count 5 is neither 0 nor the array count 1" in error_of(
        struct.pack("<QQQ", 0x112, 0, 1) + array_bytes() + struct.pack("<Q", 5)
    )
    assert "3 unexpected bytes after the NDArray list (offset 96)" in error_of(list_bytes([array_bytes()]) + b"abc")
    values = np.array([[1, 2, 3], [4, np.nan, 6]], dtype="<f4").tobytes()
    assert "centroid 1 holds a NaN or infinite value" in error_of(list_bytes([array_bytes(values=values)]))


def test_truncation_at_every_field_names_what_was_being_read_and_where():
    data = list_bytes([array_bytes((2, 3))])  # 8+8+8 | 4+4+4 | 8+8 | 4+4+4 | 24 | 8  = 96 bytes
    assert len(data) == 96
    expected = {
        0: "the list magic",
        5: "the list magic",
        8: "the reserved field",
        16: "the array count",
        24: "the array magic",
        28: "the storage type",
        32: "the number of dimensions",
        36: "dimension 0 of the shape",
        44: "dimension 1 of the shape",
        52: "the device type",
        56: "the device id",
        60: "the dtype flag",
        64: "the 2 x 3 float32 centroid values",
        87: "the 2 x 3 float32 centroid values",
        88: "the name count",
        95: "the name count",
    }
    for cut, what in expected.items():
        message = error_of(tar_bytes({"model_algo-1": data[:cut]}))
        field_start = max(o for o in (0, 8, 16, 24, 28, 32, 36, 44, 52, 56, 60, 64, 88) if o <= cut)
        assert re.search(rf"truncated: reading {re.escape(what)} needs \d+ bytes at offset {field_start}\b", message), (
            cut,
            message,
        )
        assert message.startswith("model_algo-1 in the model artifact bytes")


def test_truncated_or_corrupt_archives():
    tgz = write_model_tar_gz(CENTROIDS)
    for cut in (2, 10, len(tgz) // 2, len(tgz) - 1):
        assert "truncated gzip file" in error_of(tgz[:cut])
    assert "gzip-compressed but corrupt" in error_of(tgz[:10] + b"\xff" * 40)
    assert "trailing data after its gzip stream" in error_of(tgz + b"garbage")
    raw = tar_bytes({"model_algo-1": write_ndarray_list([CENTROIDS])}, gz=False)
    for cut in (600, 530):  # inside model_algo-1's content
        message = error_of(raw[:cut])
        assert "truncated" in message and "tar archive" in message, message
    assert "holds neither a tar archive nor an MXNet NDArray list" in error_of(gzip.compress(b"hello world"))


def test_a_tar_without_model_algo_1_lists_what_it_holds():
    message = error_of(tar_bytes({"model.bin": b"1", "output/model_algo-1": b"2"}, dirs=("output",)))
    assert message.endswith(
        "bytes) is a tar archive without model_algo-1; it holds output/, model.bin, output/model_algo-1"
    )
    assert "it holds nothing" in error_of(tar_bytes({}))
    many = error_of(tar_bytes({f"f{i}": b"" for i in range(25)}))
    assert "f19 and 5 more" in many
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("model_algo-1")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    assert "model_algo-1 in the tar archive is not a regular file" in error_of(buf.getvalue())


def test_local_path_problems(tmp_path):
    assert error_of(tmp_path / "nope.tar.gz") == f"{tmp_path / 'nope.tar.gz'} does not exist"
    assert "is a directory" in error_of(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    assert error_of(tmp_path / "empty") == f"{tmp_path / 'empty'} is empty (0 bytes)"
    (tmp_path / "text").write_bytes(b"k,feature_dim\n3,2\n")
    message = error_of(tmp_path / "text")
    assert "not gzip (1f 8b), not a tar archive" in message
    assert f"list magic {int.from_bytes(b'k,featur', 'little'):#x} is not" in message
    assert error_of(12) == "a model artifact is a local path, an s3:// URI or bytes, not int"


def test_size_limits(tmp_path, monkeypatch):
    tgz = write_model_tar_gz(np.zeros((100, 100), dtype=np.float32))  # compresses 40 kB to well under 1 kB
    (tmp_path / "model.tar.gz").write_bytes(tgz)
    monkeypatch.setattr(artifact, "MAX_ARTIFACT_BYTES", 20_000)
    assert "decompresses to more than 20,000 bytes" in error_of(tgz)
    monkeypatch.setattr(artifact, "MAX_ARTIFACT_BYTES", 100)
    assert "over the 100-byte limit" in error_of(tmp_path / "model.tar.gz")


def test_product_code_does_not_import_the_standin():
    source = Path(artifact.__file__).read_text()
    assert "offline" not in "".join(line for line in source.splitlines() if "import" in line)
    # An S3 client comes from kmeans_pipeline.aws.clients, inside the function that needs one.
    assert not re.search(r"^(import|from) (boto3|botocore|kmeans_pipeline.aws.clients)", source, re.M)


# ------------------------------------------------------------------------------------------------------------
# Every NDArray layout MXNet loads, and MXNet 1.9.1's own bytes
# ------------------------------------------------------------------------------------------------------------

# Written by MXNet 1.9.1 itself (mx.nd.save; v3 under mx.util.np_shape(True)) from centroids.npy.
MXNET = Path(__file__).resolve().parents[1] / "fixtures" / "mxnet"


@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
@pytest.mark.parametrize("names", [None, ["centroids"]])
def test_every_layout_mxnet_loads_is_read_bare_and_in_a_tar_gz(version, names):
    payload = write_ndarray_list([CENTROIDS[:2]], version=version, names=names)
    for source in (payload, tar_bytes({"model_algo-1": payload})):
        np.testing.assert_array_equal(read_centroids(source), CENTROIDS[:2])


@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
def test_every_truncation_of_every_layout_is_refused(version):
    payload = write_ndarray_list([CENTROIDS], version=version)
    for cut in range(len(payload)):
        assert "truncated" in error_of(payload[:cut]) or "empty" in error_of(payload[:cut])


@pytest.mark.parametrize("name", ["v2", "v2-named", "v3"])
def test_mxnets_own_saves_are_read_and_the_standins_writer_writes_the_same_bytes(name):
    centroids = np.load(MXNET / "centroids.npy")
    data = (MXNET / f"{name}.model_algo-1").read_bytes()
    np.testing.assert_array_equal(read_centroids(data), centroids)
    version, names = name.split("-")[0], (["centroids"] if name.endswith("named") else None)
    assert write_ndarray_list([centroids], version=version, names=names) == data


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("row_sparse", "row_sparse storage (type 1)"),
        ("csr", "csr storage (type 2)"),
        ("float64", "dtype is float64 (flag 1)"),
    ],
)
def test_mxnets_sparse_and_float64_saves_are_refused_by_name(name, says):
    assert says in error_of((MXNET / f"{name}.model_algo-1").read_bytes())


def test_a_v3_unknown_shape_and_a_bad_device_are_refused():
    unknown = list_bytes([struct.pack("<Iii", 0xF993FACA, 0, -1)])
    assert "unknown shape (ndim -1)" in error_of(unknown)
    bad_device = bytearray(list_bytes([array_bytes((2, 3))]))
    bad_device[52:56] = struct.pack("<i", 9)
    assert "device type 9" in error_of(bytes(bad_device))
