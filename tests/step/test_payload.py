"""A run's description (its configuration and dataset) must fit Step Functions' 256 KiB per payload: refused at the
budget's edge with a clear cause, at Resolve and in the data step, never States.DataLimitExceeded."""

from __future__ import annotations

import boto3
import pytest

from kmeans_pipeline.errors import DataValidationError, InvalidInputError
from kmeans_pipeline.schemas.payload import RUN_DESCRIPTION_BUDGET, payload_bytes, smallest_dataset, too_large
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.data_step import prepare_dataset as prepare_data
from testkit.aws import REGION, put_csv

START = "2026-11-23T10:00:00.000Z"


def config_for(settings, **request):
    return resolve_run({"dataKey": "incoming/wide.csv", **request}, "payload-run", START, settings, None)


def test_exactly_at_the_budget_passes_and_one_byte_more_is_refused(settings):
    config = config_for(settings)
    columns = [f"c{i:04d}" for i in range(600)]
    base = payload_bytes(config, smallest_dataset(columns))
    assert base < RUN_DESCRIPTION_BUDGET
    # Lengthen the first column's name (it appears twice in the dataset) until the description is exactly at the
    # budget, or one byte short of it when the remainder is odd.
    extra = (RUN_DESCRIPTION_BUDGET - base) // 2
    columns[0] += "x" * extra
    at = smallest_dataset(columns)
    measured = payload_bytes(config, at)
    assert RUN_DESCRIPTION_BUDGET - 1 <= measured <= RUN_DESCRIPTION_BUDGET
    assert too_large(config, at) is None
    columns[0] += "x"
    over = smallest_dataset(columns)
    assert payload_bytes(config, over) > RUN_DESCRIPTION_BUDGET
    message = too_large(config, over)
    assert message is not None and f"over the {RUN_DESCRIPTION_BUDGET:,} bytes" in message
    assert "262,144 bytes between states" in message and "featureColumns" in message


def test_resolve_refuses_feature_columns_that_cannot_fit_even_as_raw_numbers(settings):
    fits = [f"amount_{i:05d}" for i in range(500)]
    assert config_for(settings, featureColumns=fits).feature_columns == fits
    with pytest.raises(InvalidInputError, match="would take at least .* bytes for 2,000 feature columns"):
        config_for(settings, featureColumns=[f"amount_{i:05d}" for i in range(2000)])


def wide_csv(columns: int, rows: int = 60) -> str:
    header = ",".join(f"measurement_{i:04d}" for i in range(columns))
    body = "".join(",".join(str((r * 7 + c * 13) % 97 + 0.5) for c in range(columns)) + "\n" for r in range(rows))
    return header + "\n" + body


def test_the_data_step_refuses_a_dataset_too_wide_to_carry_naming_the_limit(settings):
    put_csv(settings.data_bucket, "incoming/wide.csv", wide_csv(900))
    with pytest.raises(DataValidationError) as refused:
        prepare_data(config_for(settings, k=2), settings, boto3.client("s3", region_name=REGION))
    assert "for 900 feature columns" in str(refused.value) and "Choose fewer columns" in str(refused.value)


def test_a_dataset_under_the_budget_is_described_in_full(settings):
    put_csv(settings.data_bucket, "incoming/wide.csv", wide_csv(300))
    config = config_for(settings, k=2)
    dataset = prepare_data(config, settings, boto3.client("s3", region_name=REGION))
    assert len(dataset.feature_columns) == 300 and dataset.treatment is not None
    assert payload_bytes(config, dataset) <= RUN_DESCRIPTION_BUDGET
