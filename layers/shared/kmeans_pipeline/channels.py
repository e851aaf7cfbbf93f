"""The channels the data step writes: header-less rows of plain numbers under an S3 prefix, read back in key order."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from kmeans_pipeline.artifact import split_s3_uri
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.split import parse_rows


def read_rows(s3: Any, uri: str, limit: int, dim: int) -> np.ndarray:
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
