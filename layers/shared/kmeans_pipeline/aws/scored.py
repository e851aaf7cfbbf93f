"""What the scoring API scored, kept for drift checks: one JSON Lines object per request under ``scored/``.

    scored/<endpoint>/<model>/<yyyy>/<mm>/<dd>/<hh>/<yyyymmddTHHMMSS.ffffff>Z-<random>.jsonl

One line per scored record: ``{"values": {column: value}, "cluster": ..., "distance": ..., "score": ...,
"anomaly": ...}`` with the feature columns only (the record's other fields are not kept), the cluster it was scored
against and the distance to it. Objects are SSE-KMS with the stack's key and expire after the stack's
``ScoredRecordsRetentionDays``. The model in the key means a check reads only the serving model's records; the hour
in the key, and the minute at the start of the name, mean it lists only the minutes of its window; the time in the
name places each object in the window.

What a check reads is bounded whatever the traffic (one object per request: 36,000 an hour at 10 requests a
second): it lists the window's minutes, in a seeded random order, until it has listed ``LIST_BUDGET`` objects (or
every minute), takes a seeded random sample of at most ``MAX_WINDOW_OBJECTS`` of them (the objects whose keyed
BLAKE2b hash of their key is smallest, so the sample does not depend on the order of listing), and reads them
``READERS`` at a time in that random order until it holds ``MAX_WINDOW_VALUES`` values (at most
``MAX_WINDOW_RECORDS`` records). The seed is the endpoint, the model and the window: a check run again on the same
window reads the same sample. ``Window.sample`` says when it read less than the whole window.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "scored/"
_STAMP = "%Y%m%dT%H%M%S.%f"
# What one check reads at most (module docstring): a Lambda of 300 s and 1 GB holds it with room to spare.
LIST_BUDGET = 100_000
MAX_WINDOW_OBJECTS = 5_000
MAX_WINDOW_RECORDS = 500_000
MAX_WINDOW_VALUES = 10_000_000
# Reads at once: botocore's default connection pool holds 10 per client.
READERS = 10
_BATCH = 50


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
    """The records a model scored between ``start`` (inclusive) and ``end`` (exclusive), or a seeded sample of them:
    ``objects`` read of ``listed`` listed, in ``minutes_listed`` of the window's ``minutes``; ``sample`` says how
    the records were chosen when they are not all the window's (None when they are)."""

    start: datetime
    end: datetime
    objects: int
    columns: list[str]
    raw: np.ndarray
    distance: np.ndarray
    anomaly: np.ndarray
    listed: int = 0
    minutes: int = 0
    minutes_listed: int = 0
    sample: str | None = None


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    minute = start.astimezone(UTC).replace(second=0, microsecond=0)
    found = []
    while minute < end:
        found.append(minute)
        minute += timedelta(minutes=1)
    return found


def minute_prefix(endpoint: str, model: str, minute: datetime) -> str:
    """The keys of the objects scored in one minute (their name starts with its time)."""
    minute = minute.astimezone(UTC)
    return f"{hour_prefix(endpoint, model, minute)}{minute:%Y%m%dT%H%M}"


def _priority(seed: bytes, text: str) -> int:
    """A seeded random rank of ``text``: the same for the same seed, whatever else is listed."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, key=seed).digest(), "big")


def _parse(body: bytes, columns: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, distance, anomaly = [], [], []
    for line in body.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        rows.append([float(record["values"][c]) for c in columns])
        distance.append(float(record["distance"]))
        anomaly.append(bool(record["anomaly"]))
    return (
        np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns)),
        np.asarray(distance, dtype=np.float64),
        np.asarray(anomaly, dtype=bool),
    )


@dataclass
class _Listing:
    keys: list[str]  # the chosen objects, in their random order
    listed: int
    minutes: int
    minutes_listed: int


def _list_sample(
    s3: S3Client,
    bucket: str,
    prefixes: list[str],
    start: datetime,
    end: datetime,
    seed: bytes,
    pool: ThreadPoolExecutor,
) -> _Listing:
    """The MAX_WINDOW_OBJECTS keys of smallest priority among those listed under the minutes' ``prefixes`` (in
    their order, until LIST_BUDGET keys were listed) that lie in [start, end)."""
    paginator = s3.get_paginator("list_objects_v2")

    def listed(prefix: str) -> list[str]:
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return [key for key in keys if (when := time_of_key(key)) is not None and start <= when < end]

    chosen: list[tuple[int, str]] = []  # a max-heap of (-priority, key)
    count = done = 0
    while done < len(prefixes) and count < LIST_BUDGET:
        batch = prefixes[done : done + READERS]
        for keys in pool.map(listed, batch):
            count += len(keys)
            for key in keys:
                entry = (-_priority(seed, key), key)
                if len(chosen) < MAX_WINDOW_OBJECTS:
                    heapq.heappush(chosen, entry)
                elif entry > chosen[0]:
                    heapq.heapreplace(chosen, entry)
        done += len(batch)
    return _Listing([key for _, key in sorted(chosen, reverse=True)], count, len(prefixes), done)


def read_window(
    s3: S3Client, bucket: str, endpoint: str, model: str, columns: list[str], start: datetime, end: datetime
) -> Window:
    """The records ``model`` scored behind ``endpoint`` in [start, end): all of them, or a seeded random sample
    bounded as the module says."""
    seed = hashlib.blake2b(
        f"{endpoint}|{model}|{start.isoformat()}|{end.isoformat()}".encode(), digest_size=16
    ).digest()
    minutes = sorted(_minutes(start, end), key=lambda m: _priority(seed, m.isoformat()))
    limit = min(MAX_WINDOW_RECORDS, MAX_WINDOW_VALUES // max(len(columns), 1))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    records = read = 0
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        prefixes = [minute_prefix(endpoint, model, m) for m in minutes]
        listing = _list_sample(s3, bucket, prefixes, start, end, seed, pool)
        while read < len(listing.keys) and records < limit:
            batch = listing.keys[read : read + _BATCH]
            for part in pool.map(lambda key: _parse(_read(s3, bucket, key), columns), batch):
                parts.append(part)
                records += len(part[1])
            read += len(batch)
    sample = None
    if read < listing.listed or listing.minutes_listed < listing.minutes:
        sample = (
            f"a seeded random sample: {read:,} of the {listing.listed:,} objects listed in {listing.minutes_listed:,} "
            f"of the window's {listing.minutes:,} minutes ({records:,} records)"
        )
        if listing.minutes_listed < listing.minutes:
            sample += f"; minutes listed in a seeded random order until {LIST_BUDGET:,} objects were listed"
        if read < len(listing.keys):
            sample += f"; objects read until {limit:,} records were held"
    return Window(
        start,
        end,
        read,
        columns,
        np.concatenate([p[0] for p in parts]) if parts else np.empty((0, len(columns))),
        np.concatenate([p[1] for p in parts]) if parts else np.empty(0),
        np.concatenate([p[2] for p in parts]) if parts else np.empty(0, dtype=bool),
        listed=listing.listed,
        minutes=listing.minutes,
        minutes_listed=listing.minutes_listed,
        sample=sample,
    )
