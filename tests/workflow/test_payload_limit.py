"""Wide inputs through the whole state machine: the widest dataset the budget allows runs end to end with every
state under Step Functions' 256 KiB, a wider one is refused by the data step with a clear cause, and without that
refusal the run would die with States.DataLimitExceeded (which no Catch catches)."""

from __future__ import annotations

import pytest

from kmeans_pipeline.schemas.dataset import Dataset
from kmeans_pipeline.schemas.payload import RUN_DESCRIPTION_BUDGET, payload_bytes
from kmeans_pipeline.schemas.run import RunConfig
from offline.runner import OfflineAWS

pytestmark = pytest.mark.slow  # whole executions with the real handlers, 800-column inputs

KEY = "incoming/wide.csv"
RUN = {"dataKey": KEY, "pollSeconds": 0, "k": 3, "maxTrainingJobs": 1, "maxParallelTrainingJobs": 1}


def wide_csv(columns: int, rows: int = 300) -> bytes:
    header = ",".join(f"measurement_{i:04d}" for i in range(columns))
    body = "".join(",".join(str((r * 7 + c * 13) % 97 + 0.5) for c in range(columns)) + "\n" for r in range(rows))
    return (header + "\n" + body).encode()


@pytest.fixture(scope="module")
def aws():
    with OfflineAWS() as stack:
        yield stack


def test_the_widest_dataset_the_budget_allows_runs_end_to_end(aws):
    aws.upload(wide_csv(710), KEY)
    result = aws.run(RUN, "wide-710", timeout=600)
    assert result.status == "SUCCEEDED", result.cause
    config = RunConfig.model_validate(result.state_outputs("Resolve run configuration")[0])
    dataset = Dataset.model_validate(result.output["dataset"])
    measured = payload_bytes(config, dataset)
    assert 0.97 * RUN_DESCRIPTION_BUDGET < measured <= RUN_DESCRIPTION_BUDGET  # at the limit, and it went through


def test_a_wider_dataset_is_refused_by_the_data_step_naming_the_limit(aws):
    aws.upload(wide_csv(820), KEY)
    result = aws.run(RUN, "wide-820", timeout=600)
    assert (result.status, result.error) == ("FAILED", "DataValidationError")
    assert result.cause.startswith("Merge the ranges failed: the run's configuration and dataset description take")
    assert "for 820 feature columns" in result.cause and not result.state_outputs("Start hyperparameter tuning")


def test_without_the_refusal_the_run_would_die_with_an_uncatchable_data_limit(aws, monkeypatch):
    monkeypatch.setattr("kmeans_pipeline.steps.merge_ranges.too_large", lambda *_: None)
    aws.upload(wide_csv(1000), KEY)
    result = aws.run(RUN, "wide-1000", timeout=600)
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
