"""Prepare training data: read the raw CSV from S3, validate every row, split train/test, write the channels.

The raw object is only read, in parallel ranged GETs of the version checked (so reading overlaps parsing,
which itself runs on a worker pool per core; see :func:`kmeans_pipeline.data.split.split_stream`). The rows go through :mod:`kmeans_pipeline.data.split` block by block and
the channels are written as they come, with multipart uploads (SSE-KMS) cut into shards of about
``ShardMegabytes``: memory stays bounded by a constant, whatever the input's size. The training channel is
written in as many lanes as there are training instances, so that with ``ShardedByS3Key`` every instance gets
about the same share of the rows.

The feature treatments (:mod:`kmeans_pipeline.data.treatment`) are learned in that same pass; unless the features are
the raw numbers, a second pass reads the channels back and writes them treated under ``features/``. When neither the
run nor the stack sets k, it is chosen here, before tuning, from the learner's sample of training rows
(:func:`kmeans_pipeline.model.clusters.choose_k`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kmeans_pipeline.aws.s3 import ShardedChannel, head_source, ranged_chunks
from kmeans_pipeline.data.blocks import line_blocks
from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.features import feature_blocks
from kmeans_pipeline.data.split import split_stream
from kmeans_pipeline.data.treatment import (
    TreatedOutOfRange,
    TreatmentLearner,
    channel_text,
    encode,
    first_out_of_range,
    raw_numbers,
)
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.model.clusters import CRITERION, candidate_range, choose_k
from kmeans_pipeline.schemas.dataset import Dataset, FeatureTreatment, KCandidate, KChoice, SourceObject
from kmeans_pipeline.schemas.payload import too_large
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

CHANNEL_CONTENT_TYPE = "text/csv;label_size=0"
READ_BYTES = 1 << 20


class _Observed:
    """A writer that shows every piece written to it to ``seen`` too."""

    def __init__(self, out: Any, seen: Any) -> None:
        self._out, self._seen = out, seen

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._seen(data)


class _Watch:
    """What the data step learns from the channel rows as they are written: whether they are all the same, and the
    treatments' statistics (levels over every row, the rest over the training rows), unless the features are the
    raw numbers, asked for in so many words: then there is nothing to learn."""

    def __init__(self, config: RunConfig) -> None:
        self.same = _Sameness()
        self.learner = None
        if (
            config.k is None  # k is chosen from the learner's sample of training rows
            or config.standardize is not False
            or any(kind != "numeric" for kind in config.treatments.values())
        ):
            self.learner = TreatmentLearner(seed=config.seed)

    def train(self, text: bytes) -> None:
        self.same.see(text)
        if self.learner is not None:
            self.learner.add_text(text, train=True)

    def test(self, text: bytes) -> None:
        self.same.see(text)
        if self.learner is not None:
            self.learner.add_text(text, train=False)

    def decide(self, columns: list[str], config: RunConfig) -> FeatureTreatment:
        if self.learner is None:
            return raw_numbers(columns)
        return self.learner.decide(columns, config.treatments, config.standardize)


class _Sameness:
    """Whether every channel row seen so far holds the first row's values: a file of one row repeated leaves
    K-Means nothing to cluster. Cheap: once two rows differ, it looks no further."""

    def __init__(self) -> None:
        self.first: bytes | None = None
        self.values = np.empty((0, 0))
        self.varied = False

    def see(self, text: bytes) -> None:
        if self.varied or not text:
            return
        if self.first is None:
            self.first = text[: text.index(b"\n") + 1]
            self.values = parse_rows(self.first, self.first.count(b",") + 1)
        if len(text) % len(self.first) == 0 and text == self.first * (len(text) // len(self.first)):
            return
        self.varied = bool((parse_rows(text, self.values.shape[1]) != self.values).any())

    def problem(self, rows: int, columns: list[str]) -> str | None:
        if self.varied or self.first is None:
            return None
        values = ", ".join(f"{name}={value:.9g}" for name, value in zip(columns, self.values[0].tolist()))
        return f"all {rows:,} data rows hold the same feature values ({values}): K-Means has nothing to cluster"


def prepare_data(config: RunConfig, settings: StackSettings, s3: Any) -> Dataset:
    source = head_source(s3, config.source.bucket, config.source.key, config.source.version_id)
    if source.size > settings.max_input_bytes:
        raise DataValidationError(
            f"s3://{source.bucket}/{source.key} is {source.size:,} bytes; this stack accepts at most "
            f"{settings.max_input_bytes:,} (the MaxInputMegabytes parameter): split it, or gzip it"
        )
    chunks = ranged_chunks(s3, source)
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn, "ContentType": "text/csv"}
    shard_bytes = settings.shard_megabytes << 20
    train_out = ShardedChannel(
        s3,
        settings.data_bucket,
        f"{config.dataset_prefix}train/",
        shard_bytes=shard_bytes,
        lanes=settings.training_instance_count,
        extra=extra,
    )
    test_out = ShardedChannel(
        s3, settings.data_bucket, f"{config.dataset_prefix}test/", shard_bytes=shard_bytes, lanes=1, extra=extra
    )
    watch = _Watch(config)
    try:
        result = split_stream(
            chunks,
            train_out,
            _Observed(test_out, watch.test),
            feature_columns=config.feature_columns,
            stratify_column=config.stratify_column,
            test_fraction=config.test_fraction,
            seed=config.seed,
            k=config.k or 2,
            on_train=watch.train,
            nonnegative_columns=[name for name, kind in config.treatments.items() if kind == "log"],
            treated_columns=list(config.treatments),
        )
        train_out.close()
        test_out.close()
    except BaseException:
        train_out.abort()
        test_out.abort()
        raise
    finally:
        chunks.close()
    same_rows = watch.same.problem(result.train_rows + result.test_rows, result.feature_columns)
    if same_rows:
        raise DataValidationError(same_rows)
    if len(train_out.keys) < settings.training_instance_count:
        raise DataValidationError(
            f"only {result.train_rows} training rows for {settings.training_instance_count} training instances: "
            "every instance needs a shard of its own (lower TrainingInstanceCount, or send more rows)"
        )

    bucket = settings.data_bucket
    treatment = watch.decide(result.feature_columns, config)
    train_prefix, test_prefix, raw_test_uri = f"{config.dataset_prefix}train/", f"{config.dataset_prefix}test/", None
    if not treatment.is_identity:
        raw_test_uri = f"s3://{bucket}/{test_prefix}"
        train_prefix, test_prefix = (f"{config.dataset_prefix}features/{name}/" for name in ("train", "test"))
    dataset = Dataset(
        train_uri=f"s3://{bucket}/{train_prefix}",
        test_uri=f"s3://{bucket}/{test_prefix}",
        train_rows=result.train_rows,
        test_rows=result.test_rows,
        train_shards=len(train_out.keys),
        treatment=treatment,
        raw_test_uri=raw_test_uri,
        skipped_blank_lines=result.blank_lines,
        feature_columns=result.feature_columns,
        feature_dim=treatment.feature_dim,
        content_type=CHANNEL_CONTENT_TYPE,
        source=source,
        k_choice=_k_choice(config, watch.learner, treatment, result.train_rows),
    )
    problem = too_large(config, dataset)
    if problem:  # before the second pass: the run could not carry this dataset through the state machine
        raise DataValidationError(problem)
    if treatment.is_identity:
        return dataset
    try:
        shards = _treat(
            s3, bucket, train_out.keys, train_prefix, treatment, shard_bytes, settings.training_instance_count, extra
        )
        _treat(s3, bucket, test_out.keys, test_prefix, treatment, shard_bytes, 1, extra)
    except TreatedOutOfRange as exc:
        raise _out_of_range(s3, source, config, treatment, exc) from None
    return dataset.model_copy(update={"train_shards": shards})


def _k_choice(
    config: RunConfig, learner: TreatmentLearner | None, treatment: FeatureTreatment, train_rows: int
) -> KChoice:
    """The run's or the stack's k, else the one the training rows' sample suggests (model.clusters)."""
    if config.k is not None:
        where = "the run's input (k)" if config.k_source == "run" else "the stack's DefaultK parameter"
        return KChoice(k=config.k, source=config.k_source, reason=f"k={config.k}: set by {where}")
    assert learner is not None  # made whenever k is to be chosen
    Z, _ = encode(treatment, learner.sample)
    choice = choose_k(Z, candidate_range(train_rows), seed=config.seed)
    return KChoice(
        k=choice.k,
        source="data",
        reason=choice.reason,
        criterion=CRITERION,
        candidates=[
            KCandidate(
                k=c.k,
                davies_bouldin=c.davies_bouldin if math.isfinite(c.davies_bouldin) else None,
                smallest_cluster=c.smallest_cluster,
            )
            for c in choice.candidates
        ],
        sample_rows=choice.sample_rows,
    )


def _treat(
    s3: Any,
    bucket: str,
    keys: list[str],
    prefix: str,
    treatment: FeatureTreatment,
    shard_bytes: int,
    lanes: int,
    extra: dict[str, str],
) -> int:
    """Write the channel objects ``keys`` again under ``prefix``, treated; returns how many objects it made."""
    width = len(treatment.columns)
    out = ShardedChannel(s3, bucket, prefix, shard_bytes=shard_bytes, lanes=lanes, extra=extra)
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
    return len(out.keys)


def _out_of_range(
    s3: Any, source: SourceObject, config: RunConfig, treatment: FeatureTreatment, found: TreatedOutOfRange
) -> DataValidationError:
    """Name the line and column of the first value that its treatment takes beyond float32's range: the channels
    carry no line numbers, so the source is read again (only on this error) until the first such row."""
    column = treatment.columns[found.column]
    how = f"z-scored with mean {column.mean or 0.0:.6g} and standard deviation {column.std or 0.0:.3g}"
    if column.kind == "log":
        how = f"log1p, then {how}"
    chunks = ranged_chunks(s3, source)
    try:
        _, blocks = feature_blocks(chunks, config.feature_columns)
        for X, lines in blocks:
            first = first_out_of_range(treatment, X)
            if first is not None:
                column = treatment.columns[first.column]
                return DataValidationError(
                    f"line {int(lines[first.row])}, column {column.column}: {first.value:.9g} becomes "
                    f"{first.treated:.3g} once {how}, beyond float32's range: the training rows' spread is too small "
                    "for this value (treat the column as log, or leave it out)"
                )
    finally:
        chunks.close()
    return DataValidationError(f"column {column.column}: {found.value:.9g} becomes {found.treated:.3g} once {how}")
