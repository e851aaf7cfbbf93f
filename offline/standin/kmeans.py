"""SageMaker's built-in K-Means, re-implemented with numpy.

* Hyperparameters: names, defaults and valid values of the built-in algorithm.
* Input: header-less CSV (``text/csv;label_size=0``; with ``text/csv`` alone the first column is a label)
  and recordIO-wrapped protobuf (``application/x-recordio-protobuf``), as the container reads them.
* Training: mini-batch ("web-scale", Sculley 2010) k-means over K = k x extra_center_factor centers,
  each center moving toward the mean of its new points with weight new/(old+new); then the K centers
  are reduced to k by weighted Lloyd's method with kmeans++ (or random) initialisation, several
  trials, keeping the best.
* Scoring: ``test:msd`` / ``test:ssd`` and the inference answer (closest cluster, Euclidean distance)
  computed in float32 with the stored centroids.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------------
# Hyperparameters
# ----------------------------------------------------------------------------------------------

DEFAULTS: dict[str, str] = {
    "mini_batch_size": "5000",
    "extra_center_factor": "auto",
    "init_method": "random",
    "epochs": "1",
    "local_lloyd_init_method": "kmeans++",
    "local_lloyd_max_iter": "300",
    "local_lloyd_tol": "0.0001",
    "local_lloyd_num_trials": "auto",
    "half_life_time_size": "0",
    "eval_metrics": '["msd"]',
}
REQUIRED = ("k", "feature_dim")
KNOWN = set(REQUIRED) | set(DEFAULTS) | {"force_dense"}
# Hyperparameters SageMaker lets a tuning job search for K-Means, and the range type each takes.
TUNABLE = {
    "extra_center_factor": "Integer",
    "mini_batch_size": "Integer",
    "epochs": "Integer",
    "init_method": "Categorical",
}
INIT_METHODS = ("kmeans++", "random")
OBJECTIVE_METRICS = ("test:msd", "test:ssd")
# What the algorithm prints and SageMaker scrapes (shown in DescribeTrainingJob).
METRIC_DEFINITIONS = [
    {"Name": "test:msd", "Regex": r"#quality_metric: host=\S+, test msd <loss>=(\S+)"},
    {"Name": "test:ssd", "Regex": r"#quality_metric: host=\S+, test ssd <loss>=(\S+)"},
]

_INT_RE = re.compile(r"^\s*\+?\d+\s*$")


class DataError(Exception):
    """Bad customer data or hyperparameters: the training job fails with ``ClientError: ...``."""


def _positive_int(name: str, value: str, minimum: int = 1) -> int:
    if not isinstance(value, str) or not _INT_RE.match(value):
        raise ValueError(f"hyperparameter {name}={value!r} must be an integer >= {minimum}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"hyperparameter {name}={value!r} must be an integer >= {minimum}")
    return v


def _float(name: str, value: str, minimum: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"hyperparameter {name}={value!r} must be a number") from None
    if not math.isfinite(v) or (minimum is not None and v < minimum):
        raise ValueError(f"hyperparameter {name}={value!r} must be a finite number >= {minimum}")
    return v


def _eval_metrics(value: str) -> tuple[str, ...]:
    try:
        parsed = json.loads(value.replace("'", '"'))
    except (AttributeError, ValueError):
        parsed = None
    if isinstance(parsed, str):
        parsed = [parsed]
    if not isinstance(parsed, list) or not parsed or not all(m in ("msd", "ssd") for m in parsed):
        raise ValueError(
            f'hyperparameter eval_metrics={value!r} must be a JSON list of "msd" and/or "ssd", '
            'for example ["msd", "ssd"]'
        )
    return tuple(parsed)


def check_value(name: str, value: str) -> None:
    """Raise ValueError if ``value`` is not valid for K-Means hyperparameter ``name``."""
    if name in ("k", "feature_dim", "mini_batch_size", "epochs", "local_lloyd_max_iter"):
        _positive_int(name, value)
    elif name == "half_life_time_size":
        _positive_int(name, value, minimum=0)
    elif name in ("extra_center_factor", "local_lloyd_num_trials"):
        if value != "auto":
            try:
                _positive_int(name, value)
            except ValueError:
                raise ValueError(f"hyperparameter {name}={value!r} must be 'auto' or an integer >= 1") from None
    elif name in ("init_method", "local_lloyd_init_method"):
        if value not in INIT_METHODS:
            raise ValueError(f"hyperparameter {name}={value!r} must be one of {', '.join(INIT_METHODS)}")
    elif name == "local_lloyd_tol":
        _float(name, value, minimum=0.0)
    elif name == "eval_metrics":
        _eval_metrics(value)
    elif name == "force_dense":
        if str(value).lower() not in ("true", "false"):
            raise ValueError(f"hyperparameter force_dense={value!r} must be true or false")


@dataclass(frozen=True)
class KMeansParams:
    k: int
    feature_dim: int
    mini_batch_size: int = 5000
    extra_center_factor: int | None = None  # None = auto
    init_method: str = "random"
    epochs: int = 1
    local_lloyd_init_method: str = "kmeans++"
    local_lloyd_max_iter: int = 300
    local_lloyd_tol: float = 1e-4
    local_lloyd_num_trials: int | None = None  # None = auto
    half_life_time_size: int = 0
    eval_metrics: tuple[str, ...] = ("msd",)

    @classmethod
    def from_hyperparameters(cls, hyperparameters: dict[str, str]) -> KMeansParams:
        """Parse the string hyperparameters of a training job (ValueError on a bad value)."""
        hp = dict(DEFAULTS)
        hp.update({k: v for k, v in hyperparameters.items() if not k.startswith("_")})
        for name in REQUIRED:
            if name not in hp:
                raise ValueError(f"missing required hyperparameter {name}")
        for name, value in hp.items():
            if name not in KNOWN:
                raise ValueError(f"unknown hyperparameter {name}")
            check_value(name, value)
        return cls(
            k=int(hp["k"]),
            feature_dim=int(hp["feature_dim"]),
            mini_batch_size=int(hp["mini_batch_size"]),
            extra_center_factor=None if hp["extra_center_factor"] == "auto" else int(hp["extra_center_factor"]),
            init_method=hp["init_method"],
            epochs=int(hp["epochs"]),
            local_lloyd_init_method=hp["local_lloyd_init_method"],
            local_lloyd_max_iter=int(hp["local_lloyd_max_iter"]),
            local_lloyd_tol=float(hp["local_lloyd_tol"]),
            local_lloyd_num_trials=None
            if hp["local_lloyd_num_trials"] == "auto"
            else int(hp["local_lloyd_num_trials"]),
            half_life_time_size=int(hp["half_life_time_size"]),
            eval_metrics=_eval_metrics(hp["eval_metrics"]),
        )


# ----------------------------------------------------------------------------------------------
# Input data
# ----------------------------------------------------------------------------------------------


def parse_content_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """('text/csv', {'label_size': '0'}) from 'text/csv;label_size=0'."""
    if not content_type:
        return "", {}
    parts = [p.strip() for p in content_type.split(";")]
    params = {}
    for p in parts[1:]:
        if "=" in p:
            key, _, val = p.partition("=")
            params[key.strip().lower()] = val.strip()
    return parts[0].lower(), params


def parse_csv(data: bytes, *, label_size: int, feature_dim: int | None, source: str = "data") -> np.ndarray:
    """Header-less CSV floats -> (n, feature_dim) float64; the first ``label_size`` columns dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text ({exc})") from None
    lines = [(no, line) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        return np.zeros((0, feature_dim or 0))
    rows = [line.split(",") for _, line in lines]
    widths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    expected = label_size + feature_dim if feature_dim is not None else int(widths[0])
    bad = np.flatnonzero(widths != expected)
    if bad.size:
        i = int(bad[0])
        got = int(widths[i]) - label_size
        if feature_dim is not None:
            raise DataError(
                f"{source} line {lines[i][0]} has {got} feature columns "
                f"(label_size={label_size}), but feature_dim is {feature_dim}"
            )
        raise DataError(
            f"{source} line {lines[i][0]} has {int(widths[i])} columns, line {lines[0][0]} has {int(widths[0])}"
        )
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError:
        for (no, _), row in zip(lines, rows):
            for col, cell in enumerate(row, start=1):
                try:
                    float(cell)
                except ValueError:
                    raise DataError(
                        f"{source} line {no} column {col}: could not convert {cell.strip()!r} to a float"
                    ) from None
        raise  # pragma: no cover - numpy and float() disagree
    arr = arr[:, label_size:]
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.all(np.isfinite(arr), axis=1))[0])
        raise DataError(f"{source} line {lines[i][0]} holds a NaN or infinite value")
    return arr


# recordIO framing (dmlc) and the protobuf "Record" SageMaker's algorithms read.
_RECORDIO_MAGIC = 0xCED7230A


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DataError("truncated protobuf varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise DataError("malformed protobuf varint")


def _pb_fields(buf: bytes):
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise DataError("truncated protobuf field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise DataError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _read_varint(buf, pos)
        out.append(v)
    return out


def _decode_tensor(value: bytes, kind: int) -> tuple[np.ndarray, list[int], list[int]]:
    values: list[np.ndarray] = []
    keys: list[int] = []
    shape: list[int] = []
    for field, wire, v in _pb_fields(value):
        if field == 1:
            if kind == 2:  # Float32Tensor
                values.append(np.frombuffer(v, dtype="<f4"))
            elif kind == 3:  # Float64Tensor
                values.append(np.frombuffer(v, dtype="<f8"))
            else:  # Int32Tensor
                ints = _packed_varints(v) if wire == 2 else [v]
                ints = [i - (1 << 64) if i >= (1 << 63) else i for i in ints]
                values.append(np.asarray(ints, dtype=np.float64))
        elif field == 2:
            keys.extend(_packed_varints(v) if wire == 2 else [v])
        elif field == 3:
            shape.extend(_packed_varints(v) if wire == 2 else [v])
    vals = np.concatenate(values).astype(np.float64) if values else np.zeros(0)
    return vals, keys, shape


def _records(data: bytes):
    pos, n = 0, len(data)
    pending: list[bytes] = []
    while pos < n:
        if pos + 8 > n:
            raise DataError("truncated recordIO header")
        magic, lrec = struct.unpack_from("<II", data, pos)
        if magic != _RECORDIO_MAGIC:
            raise DataError(f"bad recordIO magic {magic:#x} at offset {pos}")
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        pos += 8
        if pos + length > n:
            raise DataError("truncated recordIO record")
        chunk = data[pos : pos + length]
        pos += (length + 3) & ~3
        if cflag == 0:
            yield chunk
        elif cflag == 1:
            pending = [chunk]
        elif cflag == 2:
            pending.append(chunk)
        else:
            pending.append(chunk)
            yield struct.pack("<I", _RECORDIO_MAGIC).join(pending)
            pending = []


def parse_recordio_protobuf(data: bytes, *, feature_dim: int, source: str = "data") -> np.ndarray:
    """recordIO-protobuf Records -> (n, feature_dim) float64 (the ``values`` feature)."""
    rows = []
    for index, rec in enumerate(_records(data)):
        vector = None
        for field, _, entry in _pb_fields(rec):
            if field != 1:  # features map; labels (2) and the rest are ignored
                continue
            key, tensor = "", None
            for f, _, v in _pb_fields(entry):
                if f == 1:
                    key = bytes(v).decode("utf-8", "replace")
                elif f == 2:
                    tensor = v
            if key != "values" or tensor is None:
                continue
            for f, _, v in _pb_fields(tensor):
                if f in (2, 3, 7):
                    vals, keys, shape = _decode_tensor(v, f)
                    if keys:
                        dim = shape[0] if shape else feature_dim
                        dense = np.zeros(dim)
                        if len(keys) != len(vals) or max(keys) >= dim:
                            raise DataError(f"{source} record {index}: malformed sparse tensor")
                        dense[np.asarray(keys, dtype=np.int64)] = vals
                        vals = dense
                    vector = vals
        if vector is None:
            raise DataError(f"{source} record {index} has no 'values' feature tensor")
        if vector.size != feature_dim:
            raise DataError(f"{source} record {index} has {vector.size} features, but feature_dim is {feature_dim}")
        rows.append(vector)
    if not rows:
        return np.zeros((0, feature_dim))
    arr = np.vstack(rows)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{source} holds a NaN or infinite value")
    return arr


def _varint_bytes(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_len(field: int, payload: bytes) -> bytes:
    return _varint_bytes((field << 3) | 2) + _varint_bytes(len(payload)) + payload


def write_recordio_protobuf(features) -> bytes:
    """Dense float32 Records in recordIO framing, as ``sagemaker.amazon.common`` writes them."""
    out = bytearray()
    for row in np.asarray(features, dtype=np.float32):
        tensor = _pb_len(1, row.astype("<f4").tobytes()) + _pb_len(
            3, b"".join(_varint_bytes(int(s)) for s in row.shape)
        )
        value = _pb_len(2, tensor)  # Value.float32_tensor
        entry = _pb_len(1, b"values") + _pb_len(2, value)
        record = _pb_len(1, entry)
        out += struct.pack("<II", _RECORDIO_MAGIC, len(record)) + record
        out += b"\0" * (((len(record) + 3) & ~3) - len(record))
    return bytes(out)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


class Stopped(Exception):
    """Training was asked to stop."""


def _sq_dists(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances, float64, never negative."""
    d = (X * X).sum(1)[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _nearest(X: np.ndarray, C: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    idx = np.empty(len(X), dtype=np.int64)
    best = np.empty(len(X))
    for s in range(0, len(X), chunk):
        d = _sq_dists(X[s : s + chunk], C)
        idx[s : s + chunk] = d.argmin(1)
        best[s : s + chunk] = d[np.arange(len(d)), idx[s : s + chunk]]
    return idx, best


def _kmeanspp(X: np.ndarray, w: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """kmeans++ seeding of ``m`` centers among weighted points."""
    n = len(X)
    p = w / w.sum()
    first = rng.choice(n, p=p)
    centers = [X[first]]
    closest = ((X - X[first]) ** 2).sum(1)
    for _ in range(1, m):
        prob = w * closest
        total = prob.sum()
        if total <= 0:  # every point sits on a center already
            j = rng.choice(n, p=p)
        else:
            j = rng.choice(n, p=prob / total)
        centers.append(X[j])
        closest = np.minimum(closest, ((X - X[j]) ** 2).sum(1))
    return np.array(centers, dtype=np.float64)


def _random_init(X: np.ndarray, w: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    positive = np.flatnonzero(w > 0)
    pool = positive if len(positive) >= m else np.arange(len(X))
    chosen = rng.choice(pool, size=m, replace=False)
    return X[chosen].astype(np.float64)


def weighted_lloyd(
    X: np.ndarray,
    w: np.ndarray,
    k: int,
    *,
    init_method: str,
    max_iter: int,
    tol: float,
    trials: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Best of ``trials`` runs of weighted Lloyd's method reducing weighted points to k centers."""
    best_centers, best_cost = None, math.inf
    for _ in range(max(1, trials)):
        if init_method == "kmeans++":
            C = _kmeanspp(X, w, k, rng)
        else:
            C = _random_init(X, w, k, rng)
        prev = math.inf
        for _ in range(max(1, max_iter)):
            d = _sq_dists(X, C)
            idx = d.argmin(1)
            cost = float((w * d[np.arange(len(X)), idx]).sum())
            wsum = np.bincount(idx, weights=w, minlength=k)
            sums = np.stack([np.bincount(idx, weights=w * X[:, j], minlength=k) for j in range(X.shape[1])], 1)
            nz = wsum > 0
            C[nz] = sums[nz] / wsum[nz, None]
            if prev - cost <= tol * max(prev, 1e-300) or cost == 0.0:
                break
            prev = cost
        d = _sq_dists(X, C)
        cost = float((w * d.min(1)).sum())
        if cost < best_cost:
            best_centers, best_cost = C.copy(), cost
    return best_centers


def train(
    X: np.ndarray,
    params: KMeansParams,
    rng: np.random.Generator | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Centroids (k, feature_dim) float32 trained on X (n, feature_dim) as the built-in algorithm."""
    rng = rng if rng is not None else np.random.default_rng()
    X = np.asarray(X, dtype=np.float64)
    n, dim = X.shape
    k = params.k
    if n < k:
        raise DataError(f"the training data has {n} records, fewer than k={k}")
    factor = params.extra_center_factor
    if factor is None:  # auto: about log(n) extra centers per cluster
        factor = max(2, int(math.ceil(math.log(max(n, 3)))))
    K = int(min(n, max(k, k * factor)))
    batch = int(min(params.mini_batch_size, n))

    # Initial K centers from the first mini-batch (enlarged if it holds fewer than K points).
    first = X[: max(batch, K)]
    ones = np.ones(len(first))
    if params.init_method == "kmeans++":
        centers = _kmeanspp(first, ones, K, rng)
    else:
        centers = _random_init(first, ones, K, rng)
    counts = np.zeros(K)
    decay = 0.5 ** (1.0 / params.half_life_time_size) if params.half_life_time_size > 0 else 1.0

    for _ in range(params.epochs):
        for start in range(0, n, batch):
            if should_stop is not None and should_stop():
                raise Stopped()
            B = X[start : start + batch]
            if decay != 1.0:
                counts *= decay ** len(B)
            idx, _ = _nearest(B, centers)
            m = np.bincount(idx, minlength=K).astype(np.float64)
            nz = m > 0
            sums = np.stack([np.bincount(idx, weights=B[:, j], minlength=K) for j in range(dim)], 1)
            means = sums[nz] / m[nz, None]
            eta = m[nz] / (counts[nz] + m[nz])
            centers[nz] += eta[:, None] * (means - centers[nz])
            counts[nz] += m[nz]

    if should_stop is not None and should_stop():
        raise Stopped()
    # Reduce K weighted centers to k.
    weights = counts.copy()
    if np.count_nonzero(weights > 0) < k:
        weights = np.where(weights > 0, weights, 1e-9)
    keep = weights > 0
    trials = params.local_lloyd_num_trials or 10
    final = weighted_lloyd(
        centers[keep],
        weights[keep],
        k,
        init_method=params.local_lloyd_init_method,
        max_iter=params.local_lloyd_max_iter,
        tol=params.local_lloyd_tol,
        trials=trials,
        rng=rng,
    )
    return final.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def evaluate(X: np.ndarray, centroids: np.ndarray) -> dict[str, float]:
    """``msd`` (mean) and ``ssd`` (sum) of squared distances of each record to its closest center."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(centroids, dtype=np.float32).astype(np.float64)
    _, best = _nearest(X, C)
    return {"msd": float(best.mean()), "ssd": float(best.sum())}


def predict(X: np.ndarray, centroids: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Closest cluster index and Euclidean distance to it, as a float32 container plausibly computes them: the batched
    formula sqrt(max(|x|^2 - 2 x.c + |c|^2, 0)), all in float32 (the container's arithmetic is not documented). Near
    a centroid its subtraction cancels, so its answers differ from a direct float32 or a float64 sum by more than
    rounding: the endpoint check must allow for that (kmeans_pipeline.model.tolerance). Each row's answer does not
    depend on the other rows of the request (a BLAS matrix product's could)."""
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(centroids, dtype=np.float32)
    idx = np.empty(len(X), dtype=np.int64)
    dist = np.empty(len(X), dtype=np.float32)
    cc = (C * C).sum(axis=1, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow float32 to inf, in the container too
        for s in range(0, len(X), chunk):
            x = X[s : s + chunk]
            xx = (x * x).sum(axis=1, dtype=np.float32)
            xc = (x[:, None, :] * C[None, :, :]).sum(axis=2, dtype=np.float32)
            d2 = (xx[:, None] - np.float32(2) * xc) + cc[None, :]
            d2 = np.maximum(d2, np.float32(0))  # cancellation can leave a tiny negative
            d2 = np.where(np.isnan(d2), np.float32(np.inf), d2)  # inf - inf: the distance is beyond float32
            i = d2.argmin(1)
            idx[s : s + chunk] = i
            dist[s : s + chunk] = np.sqrt(d2[np.arange(len(i)), i], dtype=np.float32)
    return idx, dist
