"""Treat a range: one worker of "Write the treated features", the data step's second Distributed Map.

It reads the raw channel shards its range wrote, applies the treatments the reduce decided (read from the run's
dataset draft) and writes them under ``features/train/`` and ``features/test/`` with the same shard names, SSE-KMS.
A value its treatment takes beyond float32's range is a result, not a failure: the worker names its line (the
channels carry no line numbers, so only then it reads its range of the source again) and the finish step reports
the first such line in file order.
"""

from __future__ import annotations

from typing import Any

from kmeans_pipeline.aws.s3 import ShardedChannel, ranged_chunks, source_header
from kmeans_pipeline.aws.work import DRAFT, Work, treated_name
from kmeans_pipeline.data.blocks import header_and_blocks, line_blocks, row_blocks
from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.features import row_blocks_as_features
from kmeans_pipeline.data.header import parse_header
from kmeans_pipeline.data.treatment import TreatedOutOfRange, channel_text, first_out_of_range
from kmeans_pipeline.schemas.dataset import ColumnTreatment, Dataset, FeatureTreatment
from kmeans_pipeline.schemas.ranges import TreatItem, TreatResult
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

READ_BYTES = 1 << 20


def treat_range(config: RunConfig, settings: StackSettings, s3: Any, item: TreatItem) -> dict:
    work = Work(s3, config, settings)
    dataset = Dataset.model_validate(work.get_json(DRAFT)["dataset"])
    treatment = dataset.treatment
    assert treatment is not None
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn, "ContentType": "text/csv"}
    shard_bytes = settings.shard_megabytes << 20
    result = TreatResult(index=item.index)
    try:
        for channel, keys, lanes in (("train", item.train_keys, item.lanes), ("test", item.test_keys, 1)):
            written = _treat(
                s3,
                settings.data_bucket,
                keys,
                f"{config.dataset_prefix}features/{channel}/",
                f"part-{item.index:06d}-",
                treatment,
                shard_bytes,
                lanes,
                extra,
            )
            setattr(result, f"{channel}_keys", written)
    except TreatedOutOfRange as found:
        result.error = _out_of_range(s3, config, treatment, item, found)
    work.put_json(treated_name(item.index), result.to_json())
    return {"index": item.index, "problem": result.error is not None}


def _treat(
    s3: Any,
    bucket: str,
    keys: list[str],
    prefix: str,
    name: str,
    treatment: FeatureTreatment,
    shard_bytes: int,
    lanes: int,
    extra: dict[str, str],
) -> list[str]:
    """Write the channel objects ``keys`` again under ``prefix``, treated; returns the keys it wrote."""
    width = len(treatment.columns)
    out = ShardedChannel(s3, bucket, prefix, shard_bytes=shard_bytes, lanes=lanes, extra=extra, name=name)
    try:
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                for block in line_blocks(body.iter_chunks(READ_BYTES)):
                    out.write(channel_text(treatment, parse_rows(block, width)))
            finally:
                body.close()
        out.close()
    except BaseException:
        out.abort()
        raise
    return out.keys


def _out_of_range(
    s3: Any, config: RunConfig, treatment: FeatureTreatment, item: TreatItem, found: TreatedOutOfRange
) -> str:
    """The line and column of the range's first value that its treatment takes beyond float32's range, read
    again from the source (only on this error)."""
    header, _ = source_header(s3, item.source)
    layout = parse_header(header, config.feature_columns, None)
    if item.gzip:
        chunks = ranged_chunks(s3, item.source)
        _, blocks = header_and_blocks(chunks)
    else:
        chunks = ranged_chunks(s3, item.source, start=item.start, stop=item.end)
        blocks = row_blocks(line_blocks(chunks), first_line=1)
    try:
        for X, lines in row_blocks_as_features(blocks, layout):
            first = first_out_of_range(treatment, X)
            if first is not None:
                column = treatment.columns[first.column]
                where = f"s3://{item.source.bucket}/{item.source.key}: " if item.named else ""
                return where + (
                    f"line {int(lines[first.row]) + item.lines_before}, column {column.column}: {first.value:.9g} "
                    f"becomes {first.treated:.3g} once {_how(column)}, beyond float32's range: the training rows' spread is "
                    "too small for this value (treat the column as log, or leave it out)"
                )
    finally:
        chunks.close()
    column = treatment.columns[found.column]
    return f"column {column.column}: {found.value:.9g} becomes {found.treated:.3g} once {_how(column)}"


def _how(column: ColumnTreatment) -> str:
    """What the treatment does to a column's values, as the message says it."""
    how = f"z-scored with mean {column.mean or 0.0:.6g} and standard deviation {column.std or 0.0:.3g}"
    if column.weights is not None and column.weights[0] != 1:
        how += f", times its weight {column.weights[0]:.3g}"
    return f"log1p, then {how}" if column.kind == "log" else how
