"""Plan the data ranges: the input (one object, or every object under a prefix, each with its header) checked, and
cut into the byte ranges the data step's workers read, written to S3 as the Distributed Map's items.

Only the objects' identities and headers are read here: each header once, compared with the first's. An
uncompressed object is cut into ranges of ``RangeKilobytes`` (whole windows of the split's draws, see
:class:`~kmeans_pipeline.data.splitter.WindowSplitter`); a gzip object cannot be cut (its bytes decode only from its
start) and is one range, read whole by one worker. A small input is one range: one path for every size. The ranges'
ends are moved to line starts by the workers themselves (:mod:`kmeans_pipeline.data.ranges`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kmeans_pipeline.aws.s3 import head_source, source_header
from kmeans_pipeline.aws.work import PLAN, Work
from kmeans_pipeline.data.header import parse_header
from kmeans_pipeline.errors import DataValidationError, SourceObjectError
from kmeans_pipeline.schemas.dataset import SourceObject
from kmeans_pipeline.schemas.ranges import DataPlan, RangeItem
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import WINDOW_BYTES, StackSettings

# One worker reads a gzip object whole: at most this many compressed bytes (docs/benchmarks.md, "Data at any size").
MAX_GZIP_BYTES = 2 << 30
HEADER_READERS = 16


def plan_data(
    config: RunConfig,
    settings: StackSettings,
    s3: Any,
    *,
    range_bytes: int | None = None,
    window_bytes: int = WINDOW_BYTES,
) -> DataPlan:
    """Check the input and write its ranges (of ``range_bytes``, by default the stack's RangeKilobytes; a whole
    number of ``window_bytes``, the split's unit)."""
    parts = _parts(config, s3)
    total = sum(part.size for part in parts)
    where = f"s3://{config.source.bucket}/{config.source.key}"
    if total > settings.max_input_bytes:
        raise DataValidationError(
            f"{where} is {total:,} bytes; this stack accepts at most {settings.max_input_bytes:,} (the "
            "MaxInputMegabytes parameter)"
        )
    with ThreadPoolExecutor(min(HEADER_READERS, len(parts)), thread_name_prefix="header") as pool:
        headers = list(pool.map(lambda part: _header(s3, part, len(parts) > 1), parts))
    layout = parse_header(
        headers[0][0],
        config.feature_columns,
        config.stratify_column,
        [name for name, kind in config.treatments.items() if kind == "log"],
        list(config.treatments),
    )
    for part, (header, _) in zip(parts[1:], headers[1:]):
        if parse_header(header, None, None).header != layout.header:
            raise DataValidationError(
                f"s3://{part.bucket}/{part.key}: line 1: its header {header.decode(errors='replace').strip()[:200]!r} "
                f"is not the first part's ({', '.join(layout.header)}): every part must have the same columns"
            )
    range_bytes = range_bytes or settings.range_bytes
    if range_bytes % window_bytes:
        raise ValueError(f"ranges of {range_bytes:,} bytes are not whole windows of {window_bytes:,} bytes")
    cuts: list[tuple[int, SourceObject, int, int, bool]] = []
    for number, (part, (_, gzip)) in enumerate(zip(parts, headers)):
        if gzip:
            if part.size > MAX_GZIP_BYTES:
                raise DataValidationError(
                    f"s3://{part.bucket}/{part.key} is a gzip object of {part.size:,} bytes: one worker reads a gzip "
                    f"object whole (it cannot be cut into ranges), at most {MAX_GZIP_BYTES:,} bytes of it; upload it "
                    "uncompressed, or as several gzip parts under one prefix"
                )
            cuts.append((number, part, 0, part.size, True))
            continue
        for start in range(0, max(part.size, 1), range_bytes):
            cuts.append((number, part, start, min(start + range_bytes, part.size), False))
    lanes = max(1, math.ceil(settings.training_instance_count / len(cuts)))
    items = [
        RangeItem(
            index=index,
            part=number,
            source=part,
            start=start,
            end=end,
            gzip=gzip,
            lanes=lanes,
            window_bytes=window_bytes,
        )
        for index, (number, part, start, end, gzip) in enumerate(cuts)
    ]
    work = Work(s3, config, settings)
    work.put_json(PLAN, [item.to_json() for item in items])
    return DataPlan(
        items_uri=work.uri(PLAN),
        items_bucket=work.bucket,
        items_key=work.key(PLAN),
        ranges=len(items),
        parts=len(parts),
        bytes=total,
        range_bytes=range_bytes,
        feature_columns=layout.names,
    )


def _header(s3: Any, part: SourceObject, named: bool) -> tuple[bytes, bool]:
    try:
        return source_header(s3, part)
    except DataValidationError as exc:
        if named:
            raise DataValidationError(f"s3://{part.bucket}/{part.key}: {exc}") from None
        raise


def _parts(config: RunConfig, s3: Any) -> list[SourceObject]:
    """The input's objects in key order: the one object named, or every non-empty object under a prefix (a key
    ending in /)."""
    source = config.source
    if not source.key.endswith("/"):
        return [head_source(s3, source.bucket, source.key, source.version_id)]
    parts = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.key):
        for listed in page.get("Contents", []):
            if listed["Key"].endswith("/") or not listed["Size"]:
                continue  # folder markers and empty objects hold no rows
            parts.append(
                SourceObject(bucket=source.bucket, key=listed["Key"], etag=listed["ETag"], size=listed["Size"])
            )
    if not parts:
        raise SourceObjectError(f"s3://{source.bucket}/{source.key} holds no objects to read")
    return sorted(parts, key=lambda part: part.key)
