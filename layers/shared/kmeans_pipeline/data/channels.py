"""The channel format: header-less rows of plain numbers, one row per line, under an S3 prefix in key order.

The data step writes it (the source's own number text, or ``format_rows`` for treated channels); every step that
reads it back (treatments, evaluation, the endpoint check) parses it with ``parse_rows``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from kmeans_pipeline.aws.uris import split_s3_uri
from kmeans_pipeline.errors import DataValidationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def parse_rows(text: bytes, dim: int) -> np.ndarray:
    """Channel rows (plain numbers, one row per line) as a float64 matrix, with numpy's C parser."""
    body = text[:-1] if text.endswith(b"\n") else text
    if not body:
        return np.empty((0, dim))
    values = np.fromstring(body.replace(b"\n", b","), sep=",")
    if values.size % dim or values.size // dim != body.count(b"\n") + 1:
        raise DataValidationError(f"a channel block does not hold rows of {dim} numbers")
    return values.reshape(-1, dim)


def read_rows(s3: S3Client, uri: str, limit: int, dim: int) -> np.ndarray:
    """Up to ``limit`` header-less CSV rows from the objects under a channel URI, in key order, as float64."""
    bucket, prefix = split_s3_uri(uri, prefix=True)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    parts, left = [], limit
    for key in sorted(keys):
        if left <= 0:
            break
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            lines = [line for line in itertools.islice(body.iter_lines(), left) if line.strip()]
        finally:
            body.close()
        if lines:
            try:
                rows = parse_rows(b"\n".join(lines), dim)  # the data step's own channel format
            except DataValidationError as exc:
                raise DataValidationError(f"s3://{bucket}/{key}: {exc}") from exc
            parts.append(rows)
            left -= len(rows)
    if not parts:
        raise DataValidationError(f"{uri} holds no rows to evaluate the model on")
    return np.concatenate(parts)


# SageMaker reads float32: a value from 2**128 - 2**103 up rounds to infinity there. The largest float32 is
# 3.4028235e+38 (written so, it still rounds to it).
FLOAT32_LIMIT = 2.0**128 - 2.0**103
FLOAT32_MAX = "3.4028235e+38"
# Nine significant digits name every float32 exactly: a nine-digit decimal is within 5e-9 of the value relative to
# it, well inside the 3e-8 half-gap between neighbouring float32s.
DIGITS = 9
_SLOTS = 6 + 2 * DIGITS + 3  # sign, "0." and three zeros, digits and points, "e+XX" (the last point's slot is the e)
_TRIPLES = np.array([[i // 100, i // 10 % 10, i % 10] for i in range(1000)], dtype=np.uint8) + ord("0")


def format_rows(Z: np.ndarray) -> bytes:
    """Rows of numbers as channel text: every value as float32, written as C's ``%.9g`` writes it (nine significant
    digits, trailing zeros dropped: "0.25", "1e+09", "1.73350002e+18", "1"), which reads back as exactly that
    float32 whatever else is in its column or block; ValueError if a value is beyond float32's range.

    Vectorised, no Python loop over rows: a column of single digits (one-hot features) is written as they are;
    any other value's digits and exponent are computed at once and laid into a fixed template of character slots
    (see _formatted), and the empty slots are dropped in one pass.
    """
    Z = np.asarray(Z)
    if Z.ndim != 2:
        raise ValueError(f"rows must be a matrix, got shape {Z.shape}")
    n, d = Z.shape
    if n == 0:
        return b""
    V = Z.astype(np.float32).astype(np.float64)
    if not np.isfinite(V).all():
        raise ValueError("channel rows must hold numbers within float32's range only")
    digit = ((V >= 0) & (V <= 9) & (V == np.floor(V))).all(0)
    pieces = []
    general = np.flatnonzero(~digit)
    text = _formatted(V[:, general].ravel()).reshape(n, len(general), _SLOTS)
    for j in range(d):
        if digit[j]:
            pieces.append((V[:, j] + ord("0")).astype(np.uint8)[:, None])
        else:
            pieces.append(text[:, int(np.searchsorted(general, j))])
        pieces.append(np.full((n, 1), ord("," if j < d - 1 else "\n"), dtype=np.uint8))
    rows = np.concatenate(pieces, axis=1)
    return rows[rows != 0].tobytes()


def _formatted(v: np.ndarray) -> np.ndarray:
    """Finite float64 values (float32s) as ``%.9g`` text, one row of character slots each, NUL where empty: sign,
    "0." and up to three zeros (values below 1), nine digits each followed by a slot for the point, "e+XX"."""
    magnitude = np.abs(v)
    zero = magnitude == 0
    magnitude[zero] = 1.0
    exponent = np.floor(np.log10(magnitude)).astype(np.int64)
    mantissa = np.rint(magnitude * 10.0 ** (DIGITS - 1 - exponent))
    for off, fix in ((mantissa >= 10.0**DIGITS, 1), (mantissa < 10.0 ** (DIGITS - 1), -1)):  # log10's rounding
        exponent[off] += fix
        mantissa[off] = np.rint(magnitude[off] * 10.0 ** (DIGITS - 1 - exponent[off]))
    m = np.minimum(mantissa, 10.0**DIGITS - 1).astype(np.int64)
    m[zero], exponent[zero] = 0, 0
    high, low = np.divmod(m, 1000)
    high, middle = np.divmod(high, 1000)
    digits = np.concatenate([_TRIPLES[high], _TRIPLES[middle], _TRIPLES[low]], axis=1)  # ASCII
    trailing = np.argmax(digits[:, ::-1] != ord("0"), axis=1)
    significant = np.where(zero, 1, DIGITS - trailing)
    scientific = (exponent < -4) | (exponent >= DIGITS)
    small = ~scientific & (exponent < 0)
    whole = np.where(scientific | small, 0, exponent)  # the digit the point follows
    k = np.arange(DIGITS)[None, :]
    shown = (k < significant[:, None]) | (k <= whole[:, None])
    point = (k == whole[:, None]) & (significant > whole + 1)[:, None] & ~small[:, None]

    slots = np.zeros((len(v), _SLOTS), dtype=np.uint8)
    slots[:, 0] = ((v < 0) & ~zero) * np.uint8(ord("-"))
    slots[:, 1] = small * np.uint8(ord("0"))
    slots[:, 2] = small * np.uint8(ord("."))
    for j in range(3):  # 0.0001234: three zeros after the point
        slots[:, 3 + j] = (small & (j < -exponent - 1)) * np.uint8(ord("0"))
    body = slots[:, 6 : 6 + 2 * DIGITS].reshape(len(v), DIGITS, 2)
    body[:, :, 0] = digits * shown
    body[:, :, 1] = point * np.uint8(ord("."))
    tail = slots[:, 6 + 2 * DIGITS - 1 :]  # the last digit has no point after it: its slot holds the "e"
    power = np.abs(exponent)
    tail[:, 0] = scientific * np.uint8(ord("e"))
    tail[:, 1] = scientific * np.where(exponent < 0, ord("-"), ord("+")).astype(np.uint8)
    tail[:, 2] = scientific * (power // 10 + ord("0")).astype(np.uint8)
    tail[:, 3] = scientific * (power % 10 + ord("0")).astype(np.uint8)
    return slots
