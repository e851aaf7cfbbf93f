"""MXNet NDArray list files (``model_algo-1``) and the ``model.tar.gz`` that holds one.

The layout is the one SageMaker's built-in K-Means writes and loads (little-endian; MXNet's src/ndarray/ndarray.cc):

    u64 0x112 (list magic), u64 0 (reserved), u64 array count
    per array (V2, what K-Means writes): u32 0xF993FAC9, i32 storage type (0 = dense), i32 ndim,
               ndim x i64 dims, i32 device type, i32 device id, i32 dtype flag (0 = float32),
               raw data (prod(dims) items, C order)
    u64 name count (0 for k-means), then per name: u64 length, bytes

MXNet's loader also reads V3 (0xF993FACA, numpy shape semantics, otherwise as V2), V1 (0xF993FAC8, no storage type)
and the legacy layout (no magic: u32 ndim and u32 dims); the writer can write each, for tests, and the reader reads
each, as a container loading such an artifact would. Only dense float32 arrays are supported, which is all K-Means
uses. numpy only.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile

import numpy as np

LIST_MAGIC = 0x112
ARRAY_MAGIC = 0xF993FAC9
ARRAY_MAGICS = {"v1": 0xF993FAC8, "v2": ARRAY_MAGIC, "v3": 0xF993FACA}
VERSIONS = ("legacy", "v1", "v2", "v3")
STORAGE_DENSE = 0
DTYPE_FLAG_FLOAT32 = 0
DEVICE_CPU = 1
MODEL_FILE_NAME = "model_algo-1"

# mshadow type flags, only to name an unsupported dtype in an error message.
_DTYPE_FLAG_NAMES = {
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
_STORAGE_NAMES = {-1: "undefined", 0: "default (dense)", 1: "row_sparse", 2: "csr"}


def write_ndarray_list(arrays: list[np.ndarray], version: str = "v2", names: list[str] | None = None) -> bytes:
    """Serialise arrays as an MXNet NDArray list of dense float32 arrays in NDArray layout ``version`` (legacy,
    v1, v2 as K-Means writes, v3), with ``names`` (none, as K-Means writes, or one per array)."""
    if isinstance(arrays, np.ndarray):
        raise TypeError("write_ndarray_list takes a list of arrays, not one array")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}, not {version!r}")
    if names is not None and len(names) != len(arrays):
        raise ValueError(f"{len(names)} names for {len(arrays)} arrays")
    out = io.BytesIO()
    out.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays)))
    for index, array in enumerate(arrays):
        a = np.asarray(array)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"array {index}: dtype {a.dtype} cannot be stored as float32")
        if a.ndim == 0:
            raise ValueError(f"array {index}: 0-dimensional arrays are not supported")
        a = np.ascontiguousarray(a, dtype="<f4")
        if version == "legacy":  # no magic: the loader reads ndim first, then uint32 dims
            out.write(struct.pack(f"<I{a.ndim}I", a.ndim, *a.shape))
        elif version == "v1":
            out.write(struct.pack(f"<Ii{a.ndim}q", ARRAY_MAGICS["v1"], a.ndim, *a.shape))
        else:
            out.write(struct.pack(f"<Iii{a.ndim}q", ARRAY_MAGICS[version], STORAGE_DENSE, a.ndim, *a.shape))
        out.write(struct.pack("<iii", DEVICE_CPU, 0, DTYPE_FLAG_FLOAT32))
        out.write(a.tobytes(order="C"))
    out.write(struct.pack("<Q", len(names or [])))
    for name in names or []:
        raw = name.encode()
        out.write(struct.pack("<Q", len(raw)) + raw)
    return out.getvalue()


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(
                f"truncated NDArray list: need {n} bytes for {what} at offset {self.pos}, "
                f"only {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size, what))


def read_ndarray_list(data: bytes) -> list[np.ndarray]:
    """Parse an MXNet NDArray list of dense float32 arrays (names, if any, are ignored)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    r = _Reader(bytes(data))
    (magic,) = r.unpack("<Q", "list magic")
    if magic != LIST_MAGIC:
        raise ValueError(f"not an MXNet NDArray list: list magic is {magic:#x}, expected {LIST_MAGIC:#x}")
    (_reserved,) = r.unpack("<Q", "reserved field")
    (count,) = r.unpack("<Q", "array count")
    if count > 1_000_000:
        raise ValueError(f"implausible array count {count}: corrupt NDArray list")
    arrays: list[np.ndarray] = []
    for index in range(count):
        (amagic,) = r.unpack("<I", f"array {index} magic")
        dim_format = "q"
        if amagic in (ARRAY_MAGICS["v2"], ARRAY_MAGICS["v3"]):
            (stype,) = r.unpack("<i", f"array {index} storage type")
            if stype != STORAGE_DENSE:
                name = _STORAGE_NAMES.get(stype, "unknown")
                raise ValueError(f"array {index}: storage type {stype} ({name}) is not supported, only dense (0)")
            (ndim,) = r.unpack("<i", f"array {index} ndim")
        elif amagic == ARRAY_MAGICS["v1"]:
            (ndim,) = r.unpack("<i", f"array {index} ndim")
        elif amagic <= 32:  # legacy: no magic, this word is ndim and the dims are uint32
            ndim, dim_format = amagic, "I"
        else:
            raise ValueError(
                f"array {index}: magic is {amagic:#x}, not an NDArray V1, V2 or V3 magic "
                f"({', '.join(f'{m:#x}' for m in ARRAY_MAGICS.values())}) nor a legacy ndim"
            )
        if ndim < 1 or ndim > 32:
            raise ValueError(f"array {index}: unsupported number of dimensions {ndim}")
        dims = r.unpack(f"<{ndim}{dim_format}", f"array {index} shape")
        if any(d < 0 for d in dims):
            raise ValueError(f"array {index}: negative dimension in shape {dims}")
        _dev_type, _dev_id = r.unpack("<ii", f"array {index} context")
        (flag,) = r.unpack("<i", f"array {index} dtype flag")
        if flag != DTYPE_FLAG_FLOAT32:
            name = _DTYPE_FLAG_NAMES.get(flag, "unknown")
            raise ValueError(f"array {index}: dtype flag {flag} ({name}) is not supported, only float32 (0)")
        n = int(np.prod(dims, dtype=np.int64))
        raw = r.take(4 * n, f"array {index} data ({n} float32 values)")
        arrays.append(np.frombuffer(raw, dtype="<f4").reshape(dims).astype(np.float32))
    (names,) = r.unpack("<Q", "name count")
    if names not in (0, count):
        raise ValueError(f"name count {names} matches neither 0 nor the array count {count}")
    for index in range(names):
        (length,) = r.unpack("<Q", f"name {index} length")
        r.take(length, f"name {index}")
    if r.pos != len(r.data):
        raise ValueError(f"trailing garbage: {len(r.data) - r.pos} unexpected bytes after the NDArray list")
    return arrays


def write_model_tar_gz(centroids) -> bytes:
    """A ``model.tar.gz`` holding ``model_algo-1`` with the (k, feature_dim) centroids."""
    c = np.asarray(centroids)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"centroids must have shape (k, feature_dim), got {c.shape}")
    payload = write_ndarray_list([c.astype(np.float32)])
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            info = tarfile.TarInfo(MODEL_FILE_NAME)
            info.size = len(payload)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def read_model_tar_gz(data: bytes) -> np.ndarray:
    """The centroids (k, feature_dim) float32 from a K-Means ``model.tar.gz``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ValueError("model artifact is empty (0 bytes), expected a tar.gz archive")
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        raise ValueError("model artifact is a zip archive, expected a tar.gz archive")
    if data[:2] != b"\x1f\x8b":
        raise ValueError("model artifact is not gzip-compressed (no gzip magic 1f 8b), expected a tar.gz archive")
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"model artifact is not a valid gzip stream: {exc}") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            wanted = [m for m in members if m.name.lstrip("./") == MODEL_FILE_NAME]
            if not wanted:
                names = ", ".join(m.name for m in members) or "no files"
                raise ValueError(f"model artifact has no {MODEL_FILE_NAME} file (it holds: {names})")
            fh = tar.extractfile(wanted[0])
            payload = fh.read() if fh is not None else b""
    except tarfile.TarError as exc:
        raise ValueError(f"model artifact is gzip but not a tar archive: {exc}") from None
    try:
        arrays = read_ndarray_list(payload)
    except ValueError as exc:
        raise ValueError(f"{MODEL_FILE_NAME} is not a valid MXNet NDArray list: {exc}") from None
    if len(arrays) != 1:
        raise ValueError(f"{MODEL_FILE_NAME} holds {len(arrays)} arrays, K-Means expects exactly 1")
    centroids = arrays[0]
    if centroids.ndim != 2 or centroids.shape[0] < 1 or centroids.shape[1] < 1:
        raise ValueError(f"{MODEL_FILE_NAME} array has shape {centroids.shape}, expected (k, feature_dim)")
    if not np.all(np.isfinite(centroids)):
        raise ValueError(f"{MODEL_FILE_NAME} centroids contain NaN or infinite values")
    return centroids
