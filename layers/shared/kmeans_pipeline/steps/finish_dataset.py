"""Finish the dataset: what the data step hands on to tuning, once its reduce (and, unless the features are the raw
numbers, "Write the treated features") are done.

It reads the reduce's draft and each treated range's result (by index, from S3), reports the first value in file
order that its treatment takes beyond float32's range, checks that the treated channels hold exactly what the
treated ranges wrote, and returns the dataset: S3 URIs and counts, never data.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kmeans_pipeline.aws.work import CHANNELS, DRAFT, Work, check_channels, treated_name
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.schemas.dataset import Dataset
from kmeans_pipeline.schemas.ranges import TreatResult
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

READERS = 32


def finish_dataset(config: RunConfig, settings: StackSettings, s3: Any) -> Dataset:
    work = Work(s3, config, settings)
    draft = work.get_json(DRAFT)
    dataset = Dataset.model_validate(draft["dataset"])
    if not draft["treat"]:
        return dataset
    names = [treated_name(index) for index in draft["ranges"]]
    with ThreadPoolExecutor(min(READERS, max(len(names), 1)), thread_name_prefix="finish-read") as pool:
        results = [TreatResult.model_validate(found) for found in pool.map(work.get_json, names)]
    for result in results:
        if result.error is not None:
            raise DataValidationError(result.error)
    check_channels(
        work, tuple(f"features/{c}" for c in CHANNELS), [k for r in results for k in r.train_keys + r.test_keys]
    )
    bucket = settings.data_bucket
    return dataset.model_copy(
        update={
            "train_uri": f"s3://{bucket}/{config.dataset_prefix}features/train/",
            "test_uri": f"s3://{bucket}/{config.dataset_prefix}features/test/",
            "raw_test_uri": dataset.test_uri,
            "train_shards": sum(len(r.train_keys) for r in results),
        }
    )
