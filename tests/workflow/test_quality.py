"""k chosen from the data, small clusters judged from it, and the same model from the same data: whole executions
offline with the real handlers and the SageMaker stand-in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kmeans_pipeline.model.clusters import candidate_range
from offline.runner import OfflineAWS
from offline.sample_data import generate

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
INPUT = {"dataKey": KEY, "pollSeconds": 0, "maxTrainingJobs": 4, "maxParallelTrainingJobs": 2}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sample"), rows=4000, seed=5)


def read_json(aws, uri: str) -> dict:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def run_once(sample, name: str, **overrides) -> tuple[dict, dict, list[dict], bytes]:
    """(execution output, report, training jobs, the deployed model's artifact) of one run on a fresh stack."""
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, KEY)
        result = aws.run({**INPUT, **overrides}, name=name, timeout=240)
        assert result.status == "SUCCEEDED", result.cause
        output = result.output
        report = read_json(aws, output["evaluation"]["reportUri"])
        sm = aws.client("sagemaker")
        summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=output["tuningJob"], MaxResults=100
        )["TrainingJobSummaries"]
        jobs = [sm.describe_training_job(TrainingJobName=s["TrainingJobName"]) for s in summaries]
        bucket, key = report["modelArtifact"][len("s3://") :].split("/", 1)
        artifact = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return output, report, jobs, artifact


def canonical(report: dict) -> bytes:
    """The report's JSON with what names a run rather than what it learned replaced by placeholders: the run id
    (in every URI and resource name), the execution name, the best training job's name (a random suffix, as
    SageMaker's) and the uploaded object's version id. Everything else must be byte for byte the same."""
    text = json.dumps(report, indent=1)
    for value, placeholder in (
        (report["trainingJob"], "<training job>"),
        (report["runId"], "<run id>"),
        (report["executionName"], "<execution>"),
        (report["dataset"]["source"].get("versionId"), "<version>"),
    ):
        if value:
            text = text.replace(value, placeholder)
    return text.encode()


def test_without_k_the_data_step_chooses_it_and_every_step_uses_it(sample):
    output, report, jobs, _ = run_once(sample, "k-from-data")
    choice = output["dataset"]["kChoice"]
    assert output["k"] == choice["k"] == report["k"] == report["kChoice"]["k"]
    assert choice["source"] == "data" and choice["criterion"].startswith("Davies-Bouldin")
    train_rows = output["dataset"]["trainRows"]
    assert [c["k"] for c in choice["candidates"]] == candidate_range(train_rows) == list(range(8, 17))
    best = min(choice["candidates"], key=lambda c: (c["daviesBouldin"], c["k"]))
    assert best["k"] == choice["k"] and f"k={choice['k']}: the lowest Davies-Bouldin index" in choice["reason"]
    assert choice["sampleRows"] == min(4000, train_rows)
    assert {job["HyperParameters"]["k"] for job in jobs} == {str(choice["k"])}
    assert len(report["modelCentroids"]) == choice["k"] and f"k={choice['k']} (data)" in report["headline"]
    # The default small-cluster rule judged each small cluster, and says why.
    small = report["smallClusters"]
    assert small["rule"] == "auto"
    assert small["clusters"] == [d["index"] for d in small["decisions"] if d["anomalous"]]
    for decision in small["decisions"]:
        if not decision["anomalous"]:  # the demo's small clusters are kinds of transaction (tranCode levels)
            assert decision["column"] == "tranCode" and "tranCode=" in decision["reason"]
    # One threshold ranks every record: no cluster has its own.
    assert report["thresholds"]["perCluster"] == [None] * choice["k"]
    assert "overall" in report["thresholds"]["rule"]


def test_a_runs_k_is_honoured(sample):
    output, report, jobs, _ = run_once(sample, "k-from-run", k=5)
    assert output["k"] == report["k"] == 5
    assert output["dataset"]["kChoice"] == {
        "k": 5,
        "source": "run",
        "reason": "k=5: set by the run's input (k)",
        "criterion": None,
        "candidates": [],
        "sampleRows": 0,
    }
    assert {job["HyperParameters"]["k"] for job in jobs} == {"5"}


def test_the_same_data_and_input_give_the_same_models_and_report(sample):
    first_output, first, first_jobs, first_model = run_once(sample, "same-data")
    second_output, second, second_jobs, second_model = run_once(sample, "same-data")
    assert first["runId"] != second["runId"]  # two runs, on two stacks
    assert first_model == second_model

    def learned(jobs):
        by_index = sorted(jobs, key=lambda j: j["TrainingJobName"].rsplit("-", 2)[-2])
        return [(j["HyperParameters"], j["FinalMetricDataList"][0]["Value"]) for j in by_index]

    assert learned(first_jobs) == learned(second_jobs)
    assert canonical(first) == canonical(second)
    assert first_output["k"] == second_output["k"]
    assert np.isfinite(first["thresholds"]["overall"])
