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

from kmeans_pipeline.aws.s3 import ShardedChannel, head_source, ranged_chunks
from kmeans_pipeline.data.blocks import line_blocks
from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.split import split_stream
from kmeans_pipeline.data.treatment import TreatmentLearner, channel_text, encode, raw_numbers
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.model.clusters import CRITERION, candidate_range, choose_k
from kmeans_pipeline.schemas.dataset import Dataset, FeatureTreatment, KCandidate, KChoice
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
    # Raw numbers as they are, asked for in so many words: nothing to learn. Otherwise the treatments' statistics
    # are learned in the same pass (levels over every row, the rest over the training rows).
    learner = None
    if (
        config.k is None  # k is chosen from the learner's sample of training rows
        or config.standardize is not False
        or any(kind != "numeric" for kind in config.treatments.values())
    ):
        learner = TreatmentLearner(seed=config.seed)
    try:
        result = split_stream(
            chunks,
            train_out,
            test_out if learner is None else _Observed(test_out, lambda text: learner.add_text(text, train=False)),
            feature_columns=config.feature_columns,
            stratify_column=config.stratify_column,
            test_fraction=config.test_fraction,
            seed=config.seed,
            k=config.k or 2,
            on_train=(lambda text: learner.add_text(text, train=True)) if learner is not None else None,
            nonnegative_columns=[name for name, kind in config.treatments.items() if kind == "log"],
        )
        train_out.close()
        test_out.close()
    except BaseException:
        train_out.abort()
        test_out.abort()
        raise
    finally:
        chunks.close()
    if len(train_out.keys) < settings.training_instance_count:
        raise DataValidationError(
            f"only {result.train_rows} training rows for {settings.training_instance_count} training instances: "
            "every instance needs a shard of its own (lower TrainingInstanceCount, or send more rows)"
        )

    bucket = settings.data_bucket
    train_prefix, test_prefix = f"{config.dataset_prefix}train/", f"{config.dataset_prefix}test/"
    if learner is None:
        treatment = raw_numbers(result.feature_columns)
    else:
        treatment = learner.decide(result.feature_columns, config.treatments, config.standardize)
    shards, raw_test_uri = len(train_out.keys), None
    if not treatment.is_identity:
        raw_test_uri = f"s3://{bucket}/{test_prefix}"
        train_prefix, test_prefix = (f"{config.dataset_prefix}features/{name}/" for name in ("train", "test"))
        shards = _treat(
            s3, bucket, train_out.keys, train_prefix, treatment, shard_bytes, settings.training_instance_count, extra
        )
        _treat(s3, bucket, test_out.keys, test_prefix, treatment, shard_bytes, 1, extra)
    return Dataset(
        train_uri=f"s3://{bucket}/{train_prefix}",
        test_uri=f"s3://{bucket}/{test_prefix}",
        train_rows=result.train_rows,
        test_rows=result.test_rows,
        train_shards=shards,
        treatment=treatment,
        raw_test_uri=raw_test_uri,
        skipped_blank_lines=result.blank_lines,
        feature_columns=result.feature_columns,
        feature_dim=treatment.feature_dim,
        content_type=CHANNEL_CONTENT_TYPE,
        source=source,
        k_choice=_k_choice(config, learner, treatment, result.train_rows),
    )


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
