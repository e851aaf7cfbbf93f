"""Plan the scoring ranges: the first step of batch scoring (its own state machine, started by a file uploaded
under ``score/`` or by hand with ``{"scoreKey": "score/<file>.csv"}``).

It checks the file (its header must name every column the serving model scores on), pins the model the endpoint
serves now (every range is scored by it, or the batch fails), and cuts the file into the ranges the Distributed
Map's workers score: of RangeKilobytes, at most SCORE_RANGE_BYTES (a worker waits on the endpoint), a gzip file
whole. The batch's name is the file's key under ``score/`` without its extension; its results go under
``scores/<name>/<execution>/``, a folder each execution owns: a file scored again, or two batches of one name at
once, never overwrite or remove each other's parts.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from kmeans_pipeline.aws.batch import ITEMS, BatchFiles, batch_root
from kmeans_pipeline.aws.s3 import head_source, source_header
from kmeans_pipeline.aws.scoring import serving_view
from kmeans_pipeline.errors import DataValidationError, InvalidInputError
from kmeans_pipeline.schemas.scores import ScoreItem, ScorePlan
from kmeans_pipeline.schemas.settings import StackSettings

# A range a worker scores: each of its records goes through the endpoint (in request bodies of at most 6 MB), so
# a worker's time is the endpoint's, which is not measured here; 64 MiB keeps a range small next to 15 minutes.
SCORE_RANGE_BYTES = 64 << 20
UPLOADS = "score/"


def batch_key(event: Any, settings: StackSettings) -> tuple[str, str, str | None]:
    """(bucket, key, version) of the file to score, from an S3 "Object Created" event or ``{"scoreKey": ...}``."""
    if isinstance(event, dict) and isinstance(event.get("detail"), dict):
        detail = event["detail"]
        bucket = (detail.get("bucket") or {}).get("name")
        found = detail.get("object") or {}
        if not bucket or not found.get("key"):
            raise InvalidInputError("the S3 event names no bucket and key")
        return bucket, found["key"], found.get("version-id")
    if isinstance(event, dict) and isinstance(event.get("scoreKey"), str) and event["scoreKey"].strip():
        unknown = set(event) - {"scoreKey"}
        if unknown:
            raise InvalidInputError(f'unknown field(s) {", ".join(sorted(unknown))}: the input is {{"scoreKey": ...}}')
        return settings.data_bucket, event["scoreKey"].strip(), None
    raise InvalidInputError('start a batch with {"scoreKey": "score/<file>.csv"}, or upload the file under score/')


def batch_name(key: str) -> str:
    """The file's key under score/ without its extension (.csv, .csv.gz, .gz, .txt): its results' folder."""
    name = key.removeprefix(UPLOADS)
    for suffix in (".gz", ".csv", ".txt"):
        name = name.removesuffix(suffix)
    name = name.strip("/")
    if not name or key.endswith("/"):
        raise InvalidInputError(f"{key} names no file to score")
    return name


def plan_scores(event: Any, execution: str, settings: StackSettings, s3: Any, sagemaker: Any) -> ScorePlan:
    bucket, key, version = batch_key(event, settings)
    source = head_source(s3, bucket, key, version)
    where = f"s3://{bucket}/{source.key}"
    if source.size > settings.max_input_bytes:
        raise DataValidationError(
            f"{where} is {source.size:,} bytes; this stack accepts at most {settings.max_input_bytes:,} (the "
            "MaxInputMegabytes parameter)"
        )
    header, gzip = source_header(s3, source)
    names = [name.strip() for name in next(csv.reader(io.StringIO(header.decode("utf-8", errors="replace"))))]
    view = serving_view(settings.endpoint_name, settings.data_bucket, sagemaker, s3)
    missing = [column for column in view.treatment.input_columns if column not in names]
    if missing:
        raise DataValidationError(
            f"{where}: line 1: the header has no column {', '.join(missing)}, which the serving model "
            f"{view.model_name} scores on (its columns: {', '.join(view.treatment.input_columns)})"
        )
    name = batch_name(source.key)
    files = BatchFiles(s3, settings, batch_root(name, execution))
    size = min(settings.range_bytes, SCORE_RANGE_BYTES)
    cuts = [(0, source.size)] if gzip else [(a, min(a + size, source.size)) for a in range(0, source.size, size)]
    items = [
        ScoreItem(
            index=index,
            source=source,
            start=a,
            end=b,
            gzip=gzip,
            name=name,
            prefix=files.root,
            endpoint_config=view.endpoint_config,
        )
        for index, (a, b) in enumerate(cuts)
    ]
    files.put_json(ITEMS, [item.to_json() for item in items])
    return ScorePlan(
        name=name,
        execution=execution,
        prefix=files.root,
        source=source,
        items_bucket=files.bucket,
        items_key=files.key(ITEMS),
        ranges=len(items),
        model=view.model_name,
        endpoint_config=view.endpoint_config,
    )
