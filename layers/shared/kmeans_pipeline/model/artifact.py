"""Read the centroids out of a SageMaker K-Means model artifact with numpy alone (no MXNet).

The artifact is a ``model.tar.gz`` holding ``model_algo-1``, an MXNet NDArray list with one dense float32 array of
shape (k, feature_dim). Little-endian layout, as MXNet's ``NDArray::Save`` writes it (src/ndarray/ndarray.cc):

    u64 0x112 (list magic), u64 0 (reserved), u64 array count, the arrays,
    u64 name count (0 for K-Means, or the array count), then per name: u64 length, bytes

and each array in one of the layouts MXNet's loader reads (K-Means writes V2 today; the others are read so that a
container update cannot fail the evaluation):

    V2     u32 0xF993FAC9, i32 storage type (0 dense), i32 ndim, ndim x i64 dims,
           i32 device type, i32 device id, i32 dtype flag (0 float32), prod(dims) values in C order
    V3     u32 0xF993FACA (numpy shape semantics, MXNet >= 1.5), then as V2; ndim -1 is an unknown shape
    V1     u32 0xF993FAC8, i32 ndim, ndim x i64 dims, then the device, dtype flag and values (no storage type)
    legacy no magic (MXNet < 0.10.1): u32 ndim, ndim x u32 dims, then the device, dtype flag and values

``read_centroids`` takes a local path, an ``s3://bucket/key`` URI or the bytes themselves, and recognises the
container by its content: gzip (a tar.gz), tar, or a bare NDArray list. Anything else (a zip, a sparse or float64
array, several arrays, a truncated file, a tar without ``model_algo-1``) raises ``ModelArtifactError`` naming the
source and what is wrong.
"""

from __future__ import annotations

import io
import os
import posixpath
import struct
import tarfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kmeans_pipeline.aws.uris import split_s3_uri
from kmeans_pipeline.errors import ModelArtifactError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MODEL_MEMBER = "model_algo-1"
# Real K-Means artifacts are k x feature_dim x 4 bytes; anything near this limit is not one.
MAX_ARTIFACT_BYTES = 512 * 1024 * 1024

_LIST_MAGIC = 0x112
_ARRAY_MAGIC_V1 = 0xF993FAC8
_ARRAY_MAGIC_V2 = 0xF993FAC9
_ARRAY_MAGIC_V3 = 0xF993FACA
_VERSIONS = {_ARRAY_MAGIC_V1: "V1", _ARRAY_MAGIC_V2: "V2", _ARRAY_MAGIC_V3: "V3"}
# mshadow's device types (include/mxnet/base.h): cpu, gpu, cpu_pinned, cpu_shared.
_DEVICE_TYPES = {1, 2, 3, 5}
_STORAGE_TYPES = {-1: "undefined", 0: "dense", 1: "row_sparse", 2: "csr"}
# mshadow's type flags (mshadow/base.h), only to name what is not float32.
_DTYPES = {
    0: "float32",
    1: "float64",
    2: "float16",
    3: "uint8",
    4: "int32",
    5: "int8",
    6: "int64",
    7: "bool",
    8: "int16",
    9: "uint16",
    10: "uint32",
    11: "uint64",
    12: "bfloat16",
}
_MAX_NDIM = 32
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ZIP_MESSAGE = "is a zip archive; SageMaker's K-Means artifact is a tar.gz holding model_algo-1"
_MISSING_S3_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_S3_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidObjectState"}


def read_centroids(
    source: str | os.PathLike | bytes | bytearray | memoryview, *, s3: S3Client | None = None
) -> np.ndarray:
    """The (k, feature_dim) float32 centroids in a K-Means artifact: a local path, an s3:// URI or bytes.

    ``s3`` is a boto3 S3 client, used for s3:// sources (one is created when it is None).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), f"the model artifact bytes ({len(source)} bytes)"
    elif isinstance(source, str) and source.startswith("s3://"):
        data, name = _read_s3(source, s3), source
    elif isinstance(source, (str, os.PathLike)):
        data, name = _read_local(Path(source)), str(source)
    else:
        raise ModelArtifactError(
            f"a model artifact is a local path, an s3:// URI or bytes, not {type(source).__name__}"
        )
    return _centroids_from_container(data, name)


def centroids_to_json(centroids: np.ndarray) -> dict:
    """{"k", "featureDim", "centroids"}: every float32 value exactly, as a JSON number."""
    c = np.asarray(centroids, dtype=np.float32)
    if c.ndim != 2:
        raise ValueError(f"centroids must have shape (k, feature_dim), got {c.shape}")
    return {"k": int(c.shape[0]), "featureDim": int(c.shape[1]), "centroids": c.astype(np.float64).tolist()}


# ------------------------------------------------------------------------------------------------------------
# Getting the bytes
# ------------------------------------------------------------------------------------------------------------


def _read_s3(uri: str, s3: S3Client | None) -> bytes:
    bucket, key = split_s3_uri(uri)
    if s3 is None:
        from kmeans_pipeline.aws.clients import client  # boto3 only when an S3 artifact is read

        s3 = client("s3")
    from botocore.exceptions import ClientError

    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _MISSING_S3_CODES:
            raise ModelArtifactError(f"{uri} does not exist (NoSuchKey): no model artifact at that key") from exc
        if code == "NoSuchBucket":
            raise ModelArtifactError(f"{uri}: the bucket {bucket} does not exist (NoSuchBucket)") from exc
        if code in _DENIED_S3_CODES:
            raise ModelArtifactError(f"{uri} cannot be read ({code}): {error.get('Message', exc)}") from exc
        raise  # throttling, server errors: not the artifact's fault, let the caller retry
    body = answer["Body"]
    try:
        size = answer.get("ContentLength")
        if size is not None and size > MAX_ARTIFACT_BYTES:
            raise ModelArtifactError(_too_large(uri, size))
        data = body.read(MAX_ARTIFACT_BYTES + 1)
    finally:
        body.close()
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ModelArtifactError(_too_large(uri, len(data)))
    return data


def _read_local(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise ModelArtifactError(f"{path} is a directory, not a model.tar.gz or {MODEL_MEMBER} file")
        size = path.stat().st_size
        if size > MAX_ARTIFACT_BYTES:
            raise ModelArtifactError(_too_large(str(path), size))
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelArtifactError(f"{path} does not exist") from None
    except OSError as exc:
        raise ModelArtifactError(f"{path} cannot be read: {exc.strerror or exc}") from None


def _too_large(name: str, size: int) -> str:
    return (
        f"{name} is {size:,} bytes, over the {MAX_ARTIFACT_BYTES:,}-byte limit for a K-Means model "
        "(k x feature_dim float32 values): not a K-Means artifact"
    )


# ------------------------------------------------------------------------------------------------------------
# The container: tar.gz, tar or a bare NDArray list
# ------------------------------------------------------------------------------------------------------------


def _centroids_from_container(data: bytes, name: str) -> np.ndarray:
    if not data:
        raise ModelArtifactError(f"{name} is empty (0 bytes)")
    if data.startswith(_ZIP_MAGICS):
        raise ModelArtifactError(f"{name} {_ZIP_MESSAGE}")
    if data.startswith(_GZIP_MAGIC):
        inner = _gunzip(data, name)
        if _is_tar(inner):
            return _from_tar(inner, name)
        if inner.startswith(_ZIP_MAGICS):
            raise ModelArtifactError(
                f"{name} is a gzip-compressed zip archive; SageMaker's K-Means artifact is a "
                f"tar.gz holding {MODEL_MEMBER}"
            )
        if _starts_with_list_magic(inner):
            # A gzipped bare model_algo-1: unusual but unambiguous.
            return _parse_ndarray_list(inner, f"{name} (gzip-compressed NDArray list)")
        raise ModelArtifactError(
            f"{name} is gzip-compressed but holds neither a tar archive nor an MXNet NDArray list "
            f"(its content starts with {inner[:8].hex(' ') or 'nothing'})"
        )
    if _is_tar(data):
        return _from_tar(data, name)
    if len(data) >= 8 and not _starts_with_list_magic(data):
        (magic,) = struct.unpack_from("<Q", data)
        raise ModelArtifactError(
            f"{name} is not a K-Means model artifact: not gzip (1f 8b), not a tar archive, and its list magic "
            f"{magic:#x} is not an MXNet NDArray list's {_LIST_MAGIC:#x}"
        )
    return _parse_ndarray_list(data, name)


def _starts_with_list_magic(data: bytes) -> bool:
    return data[:8] == struct.pack("<Q", _LIST_MAGIC)


def _is_tar(data: bytes) -> bool:
    # POSIX (ustar\0) and GNU (ustar  \0) headers carry "ustar" at offset 257; Python's tarfile writes either.
    if len(data) >= 262 and data[257:262] == b"ustar":
        return True
    return len(data) >= 1024 and not data[:1024].strip(b"\0")  # an empty archive: only its end-of-archive blocks


def _gunzip(data: bytes, name: str) -> bytes:
    """Every gzip member of ``data``, decompressed, refusing more than MAX_ARTIFACT_BYTES."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, MAX_ARTIFACT_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise ModelArtifactError(f"{name} is gzip-compressed but corrupt: {exc}") from None
        if len(out) > MAX_ARTIFACT_BYTES or inflater.unconsumed_tail:
            raise ModelArtifactError(
                f"{name} decompresses to more than {MAX_ARTIFACT_BYTES:,} bytes: not a K-Means model artifact"
            )
        if not inflater.eof:
            raise ModelArtifactError(
                f"{name} is a truncated gzip file: the compressed stream ends after {len(data)} bytes "
                f"({len(out)} bytes decompressed) without its end marker"
            )
        rest = inflater.unused_data.lstrip(b"\0")  # gzip allows zero padding between and after members
        if rest and not rest.startswith(_GZIP_MAGIC):
            raise ModelArtifactError(f"{name} has {len(rest)} bytes of trailing data after its gzip stream")
    return bytes(out)


def _from_tar(data: bytes, name: str) -> np.ndarray:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            wanted = [m for m in members if posixpath.normpath(m.name) == MODEL_MEMBER]
            if not wanted:
                held = [m.name + ("/" if m.isdir() else "") for m in members]
                listing = ", ".join(held[:20]) + (f" and {len(held) - 20} more" if len(held) > 20 else "")
                raise ModelArtifactError(
                    f"{name} is a tar archive without {MODEL_MEMBER}; it holds " + (listing if held else "nothing")
                )
            member = wanted[-1]  # tar semantics: the last copy of a name wins
            if not member.isfile():
                raise ModelArtifactError(f"{name}: {MODEL_MEMBER} in the tar archive is not a regular file")
            fh = tar.extractfile(member)
            payload = fh.read() if fh is not None else b""
    except tarfile.TarError as exc:
        raise ModelArtifactError(f"{name} is not a readable tar archive (truncated or corrupt): {exc}") from None
    if len(payload) != member.size:
        raise ModelArtifactError(
            f"{name}: {MODEL_MEMBER} is truncated in the tar archive: {len(payload)} of its {member.size} bytes"
        )
    return _parse_ndarray_list(payload, f"{MODEL_MEMBER} in {name}")


# ------------------------------------------------------------------------------------------------------------
# The NDArray list
# ------------------------------------------------------------------------------------------------------------


class _Cursor:
    """Reads little-endian fields in order; a short read names the field and the offset."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.offset = data, name, 0

    def fail(self, problem: str) -> ModelArtifactError:
        return ModelArtifactError(f"{self.name}: {problem}")

    def read(self, size: int, what: str) -> bytes:
        left = len(self.data) - self.offset
        if size > left:
            raise self.fail(
                f"truncated: reading {what} needs {size} bytes at offset {self.offset}, "
                f"but only {left} are left ({len(self.data)} bytes in all)"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def field(self, fmt: str, what: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt), what))[0]


def _parse_ndarray_list(data: bytes, name: str) -> np.ndarray:
    cur = _Cursor(data, name)
    magic = cur.field("Q", "the list magic")
    if magic != _LIST_MAGIC:
        raise cur.fail(f"wrong list magic {magic:#x}, an MXNet NDArray list starts with {_LIST_MAGIC:#x}")
    cur.field("Q", "the reserved field")
    count = cur.field("Q", "the array count")
    if count != 1:
        raise cur.fail(
            f"the NDArray list holds {count} arrays; a K-Means model holds exactly one, the (k, feature_dim) centroids"
        )
    centroids = _parse_array(cur)
    names = cur.field("Q", "the name count")
    if names not in (0, count):
        raise cur.fail(f"name count {names} is neither 0 nor the array count {count}")
    for index in range(names):
        length = cur.field("Q", f"the length of name {index}")
        cur.read(length, f"name {index} ({length} bytes)")
    if cur.offset != len(data):
        raise cur.fail(f"{len(data) - cur.offset} unexpected bytes after the NDArray list (offset {cur.offset})")
    return centroids


def _array_header(cur: _Cursor) -> tuple[str, tuple[int, ...]]:
    """(the layout's name, the shape) of the next array, in any layout MXNet loads; the cursor is then at its
    device type."""
    start = cur.offset
    magic = cur.field("I", "the array magic")
    dimension = "q"
    if magic in (_ARRAY_MAGIC_V2, _ARRAY_MAGIC_V3):
        version = f"NDArray {_VERSIONS[magic]}"
        storage = cur.field("i", "the storage type")
        if storage != 0:
            kind = _STORAGE_TYPES.get(storage, "unknown")
            raise cur.fail(
                f"the array ({version}) has {kind} storage (type {storage}); K-Means centroids are a dense array "
                "(type 0)"
            )
        ndim = cur.field("i", "the number of dimensions")
        if magic == _ARRAY_MAGIC_V3 and ndim == -1:
            raise cur.fail(f"the array ({version}) has an unknown shape (ndim -1): an empty NDArray, not centroids")
    elif magic == _ARRAY_MAGIC_V1:
        version = "NDArray V1"
        ndim = cur.field("i", "the number of dimensions")
    elif magic <= _MAX_NDIM:  # MXNet < 0.10.1 wrote no magic: its loader reads this word as ndim, then u32 dims
        version, ndim, dimension = "legacy NDArray, no magic", magic, "I"
    else:
        raise cur.fail(
            f"unknown array magic {magic:#x} at offset {start}: not NDArray V1 ({_ARRAY_MAGIC_V1:#x}), V2 "
            f"({_ARRAY_MAGIC_V2:#x}) or V3 ({_ARRAY_MAGIC_V3:#x}), nor a legacy array's number of dimensions"
        )
    if not 0 <= ndim <= _MAX_NDIM:
        raise cur.fail(f"the array ({version}) claims {ndim} dimensions: corrupt header at offset {cur.offset - 4}")
    return version, tuple(cur.field(dimension, f"dimension {i} of the shape") for i in range(ndim))


def _parse_array(cur: _Cursor) -> np.ndarray:
    version, shape = _array_header(cur)
    if len(shape) != 2:  # 0 dimensions is an empty NDArray ("none"); its record would end here
        raise cur.fail(
            f"the array is {len(shape)}-D with shape {shape} ({version}); K-Means centroids are 2-D (k, feature_dim)"
        )
    k, dim = shape
    if k < 1 or dim < 1:
        raise cur.fail(f"the array has shape {shape}; K-Means centroids need k >= 1 and feature_dim >= 1")
    device = cur.field("i", "the device type")
    cur.field("i", "the device id")
    if device not in _DEVICE_TYPES:
        raise cur.fail(f"the array ({version}) names device type {device}: corrupt header")
    flag = cur.field("i", "the dtype flag")
    if flag != 0:
        raise cur.fail(
            f"the array's dtype is {_DTYPES.get(flag, 'unknown')} (flag {flag}); K-Means centroids are float32 (0)"
        )
    size = 4 * k * dim
    if size > MAX_ARTIFACT_BYTES:
        raise cur.fail(f"the array's shape {shape} needs {size:,} bytes, more than any K-Means model")
    raw = cur.read(size, f"the {k} x {dim} float32 centroid values")
    centroids = np.frombuffer(raw, dtype="<f4").reshape(k, dim).astype(np.float32)
    bad = ~np.isfinite(centroids).all(axis=1)
    if bad.any():
        raise cur.fail(f"centroid {int(np.flatnonzero(bad)[0])} holds a NaN or infinite value")
    return centroids
