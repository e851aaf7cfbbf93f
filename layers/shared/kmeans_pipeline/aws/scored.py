"""What the scoring API scored, kept for drift checks: one JSON Lines object per request under ``scored/``.

    scored/<endpoint>/<model>/<yyyy>/<mm>/<dd>/<hh>/<yyyymmddTHHMMSS.ffffff>Z-<random>.jsonl

One line per scored record: ``{"values": {column: value}, "cluster": ..., "distance": ..., "score": ...,
"anomaly": ...}`` with the feature columns only (the record's other fields are not kept), the cluster it was scored
against and the distance to it. Objects are SSE-KMS with the stack's key and expire after the stack's
``ScoredRecordsRetentionDays``. The model in the key means a check reads only the serving model's records; the hour
in the key means it lists only the hours of its window; the time in the name places each object in the window.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "scored/"
_STAMP = "%Y%m%dT%H%M%S.%f"


def model_prefix(endpoint: str, model: str) -> str:
    return f"{PREFIX}{endpoint}/{model}/"


def hour_prefix(endpoint: str, model: str, when: datetime) -> str:
    return f"{model_prefix(endpoint, model)}{when.astimezone(UTC):%Y/%m/%d/%H}/"


def scored_key(endpoint: str, model: str, when: datetime) -> str:
    when = when.astimezone(UTC)
    return f"{hour_prefix(endpoint, model, when)}{when.strftime(_STAMP)}Z-{secrets.token_hex(4)}.jsonl"


def time_of_key(key: str) -> datetime | None:
    """When the object's records were scored (from its name), None for a key not in this layout."""
    name = key.rsplit("/", 1)[-1]
    try:
        return datetime.strptime(name.split("Z-", 1)[0], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def scored_lines(
    columns: list[str], raw: np.ndarray, cluster: np.ndarray, distance: np.ndarray, score: np.ndarray
) -> bytes:
    """The JSON Lines of scored records (raw feature values in ``columns`` order, the cluster scored against, the
    distance to it, the score)."""
    lines = [
        json.dumps(
            {
                "values": dict(zip(columns, row)),
                "cluster": int(c),
                "distance": float(d),
                "score": float(s),
                "anomaly": bool(s > 1),
            },
            separators=(",", ":"),
        )
        for row, c, d, s in zip(raw.tolist(), cluster.tolist(), distance.tolist(), score.tolist())
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def put_scored(s3: S3Client, bucket: str, kms_key_arn: str, key: str, body: bytes) -> None:
    """SSE-KMS with ``kms_key_arn`` (empty: the bucket's default key, which the bucket policy allows too)."""
    kind = "application/x-ndjson"
    if kms_key_arn:
        s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=kind, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_arn
        )
    else:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=kind, ServerSideEncryption="aws:kms")


def _read(s3: S3Client, bucket: str, key: str) -> bytes:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return body.read()
    finally:
        body.close()


@dataclass
class Window:
    """The records a model scored between ``start`` (inclusive) and ``end`` (exclusive)."""

    start: datetime
    end: datetime
    objects: int
    columns: list[str]
    raw: np.ndarray
    distance: np.ndarray
    anomaly: np.ndarray


def _hours(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def read_window(
    s3: S3Client, bucket: str, endpoint: str, model: str, columns: list[str], start: datetime, end: datetime
) -> Window:
    """Every record ``model`` scored behind ``endpoint`` in [start, end), read from the hours of the window."""
    keys = []
    paginator = s3.get_paginator("list_objects_v2")
    for hour in _hours(start, end):
        for page in paginator.paginate(Bucket=bucket, Prefix=hour_prefix(endpoint, model, hour)):
            for item in page.get("Contents", []):
                when = time_of_key(item["Key"])
                if when is not None and start <= when < end:
                    keys.append(item["Key"])
    rows, distance, anomaly = [], [], []
    for key in sorted(keys):
        for line in _read(s3, bucket, key).splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            rows.append([float(record["values"][c]) for c in columns])
            distance.append(float(record["distance"]))
            anomaly.append(bool(record["anomaly"]))
    return Window(
        start,
        end,
        len(keys),
        columns,
        np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns)),
        np.asarray(distance, dtype=np.float64),
        np.asarray(anomaly, dtype=bool),
    )
