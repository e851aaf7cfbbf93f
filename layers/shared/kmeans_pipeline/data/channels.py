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


# Significant digits kept of each column's largest value in a block: float32 holds about 7.2.
SIGNIFICANT_DIGITS = 8
_POWERS = 10 ** np.arange(19, dtype=np.int64)
# Values written as integers of up to this many digits (one more is the sentinel) stay within int64.
_MAX_DIGITS = 17


def format_rows(Z: np.ndarray) -> bytes:
    """Rows of finite numbers as channel text, ``SIGNIFICANT_DIGITS`` digits of each column's largest magnitude
    (so an absolute error of at most half a unit in the last of them), vectorised: no Python loop over rows.

    Each column is written in fixed point with its own number of decimals (0/1 columns as "0" and "1"), so a
    block is a few numpy passes over a (rows x characters) matrix instead of one ``%`` format per row.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"rows must be a matrix, got shape {Z.shape}")
    n, d = Z.shape
    if n == 0:
        return b""
    if not np.isfinite(Z).all():
        raise ValueError("channel rows must hold finite numbers only")
    pieces = []
    for j in range(d):
        v = Z[:, j]
        top = float(np.abs(v).max())
        magnitude = int(np.floor(np.log10(top))) + 1 if top > 0 else 1  # digits before the point
        decimals = int(np.clip(SIGNIFICANT_DIGITS - magnitude, 0, 12))
        if magnitude + decimals > _MAX_DIGITS:
            raise ValueError(f"column {j} holds {top:g}, too large to write in fixed point")
        q = np.rint(np.abs(v) * 10.0**decimals).astype(np.int64)
        decimals_used = decimals
        if decimals and (q % _POWERS[decimals] == 0).all():  # whole numbers (one-hot, codes): no decimals
            q //= _POWERS[decimals]
            decimals_used = 0
        width = max(len(str(int(q.max()))), decimals_used + 1)  # at least one digit before the point
        negative = (v < 0) & (q > 0)
        # Every value as exactly `width` digits: numpy writes q + 10**width (a leading 1, then the digits with
        # their leading zeros), and the 1 is dropped; leading zeros before the point are then skipped.
        if width == 1:  # single digits (one-hot features, small codes): no text conversion at all
            chars = (q + ord("0")).astype(np.uint8)[:, None]
        else:
            text = (q + _POWERS[width]).astype(f"S{width + 1}")
            chars = text.view(np.uint8).reshape(n, width + 1)[:, 1:].copy()
        before_point = width - decimals_used
        leading = np.cumsum(chars[:, : before_point - 1] != ord("0"), axis=1) == 0
        chars[:, : before_point - 1][leading] = 0
        parts = [np.where(negative, ord("-"), 0).astype(np.uint8)[:, None]]
        if decimals_used:
            parts += [
                chars[:, : width - decimals_used],
                np.full((n, 1), ord("."), np.uint8),
                chars[:, width - decimals_used :],
            ]
        else:
            parts.append(chars)
        parts.append(np.full((n, 1), ord("," if j < d - 1 else "\n"), np.uint8))
        pieces.append(np.concatenate(parts, axis=1))
    matrix = np.concatenate(pieces, axis=1)
    return matrix[matrix != 0].tobytes()
