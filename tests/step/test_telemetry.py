"""What an operator sees of a handler's invocation: the EMF metrics on its stdout (Powertools' way of testing
metrics: capture stdout, parse the JSON), flushed once per invocation and absent when there is nothing to report,
and the run id and execution name on every log line."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from kmeans_pipeline.schemas.ranges import MergeResult
from kmeans_pipeline.schemas.results import (
    EndpointVerification,
    Evaluation,
    GateDecision,
    TuningStatus,
)
from kmeans_pipeline.steps.score_records import ScoreResponse

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "kmeans-dev/kmeans-pipeline"


def event(step: str) -> dict:
    return json.loads((ROOT / "events" / f"{step}.json").read_text())


def load_handler(step: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of functions/<step>/app.py, loaded as Lambda loads it (a cold start) while pytest captures
    stdout: its Logger and its metrics write where capsys reads. A service name of its own (Powertools keeps one
    log handler per service name for the process) keeps it apart from every other test's."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"telemetry-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    spec = importlib.util.spec_from_file_location(f"fresh_{step}_app", ROOT / "functions" / step / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def printed(capsys: pytest.CaptureFixture) -> tuple[list[dict], list[dict]]:
    """(EMF documents, log lines) the invocation wrote to stdout."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line], [line for line in lines if "_aws" not in line]


def metric_values(document: dict) -> dict[str, float]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    # Powertools writes each metric's values as a list: one value, one per invocation.
    values = {metric["Name"]: document[metric["Name"]] for metric in directive["Metrics"]}
    assert all(isinstance(v, list) and len(v) == 1 for v in values.values()), values
    return {name: v[0] for name, v in values.items()}


def dimensions(document: dict) -> dict[str, str]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    return {name: document[name] for names in directive["Dimensions"] for name in names}


def test_the_merge_counts_the_rows_it_prepared_and_every_log_line_names_the_run(
    settings_env, lambda_context, monkeypatch, capsys
):
    app = load_handler("merge_ranges", monkeypatch)
    given = event("merge_ranges")
    merged = MergeResult(next="treat", items=3, train_rows=8000, test_rows=2000)
    monkeypatch.setattr(app, "merge_ranges", lambda *args: merged)
    capsys.readouterr()
    app.handler(given, lambda_context)
    documents, logs = printed(capsys)
    assert len(documents) == 1 and metric_values(documents[0]) == {"TrainRows": 8000, "TestRows": 2000}
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Count"
    assert dimensions(documents[0]) == {"service": os.environ["POWERTOOLS_SERVICE_NAME"]}
    assert logs and all(
        (line["run_id"], line["execution_name"]) == (given["config"]["runId"], given["config"]["executionName"])
        for line in logs
    )


def test_check_tuning_writes_nothing_while_tuning_runs_and_the_training_jobs_once_it_ends(
    settings_env, lambda_context, monkeypatch, capsys
):
    app = load_handler("check_tuning", monkeypatch)
    jobs = {"completed": 7, "inProgress": 0, "failed": 2, "stopped": 1}
    status = TuningStatus(outcome="running", status="InProgress", training_jobs=jobs, budget=10)
    monkeypatch.setattr(app, "check_tuning", lambda *args: status)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.handler(event("check_tuning"), lambda_context)
    documents, _ = printed(capsys)
    assert documents == [] and caught == []  # nothing to report: no EMF line, and not Powertools' warning either
    status = TuningStatus(outcome="failed", status="Failed", training_jobs=jobs, budget=10, error="TuningJobFailed")
    monkeypatch.setattr(app, "check_tuning", lambda *args: status)
    app.handler(event("check_tuning"), lambda_context)
    documents, _ = printed(capsys)
    assert [metric_values(d) for d in documents] == [{"TrainingJobsCompleted": 7, "TrainingJobsFailed": 2}]


@pytest.mark.parametrize(("decision", "promoted", "kept"), [("promote", 1, 0), ("keep", 0, 1)])
def test_evaluate_model_counts_the_gates_decision_per_endpoint(
    settings_env, lambda_context, monkeypatch, capsys, decision, promoted, kept
):
    app = load_handler("evaluate_model", monkeypatch)
    gate = GateDecision(decision=decision, reason="r", new_msd=1.0, tolerance_percent=5.0)
    result = Evaluation(
        report_uri="s3://b/r.json", headline="h", gate=gate, evaluated_rows=10, flagged_share=0.1, overall_threshold=1.0
    )
    monkeypatch.setattr(app, "evaluate_model", lambda *args, **kwargs: result)
    capsys.readouterr()
    service = os.environ["POWERTOOLS_SERVICE_NAME"]
    for under_lease, comparison in ((False, "first"), (True, "underLease")):
        app.handler({**event("evaluate_model"), "underLease": under_lease}, lambda_context)
        (document,), _ = printed(capsys)
        assert metric_values(document) == {"ModelsPromoted": promoted, "ModelsKept": kept}
        # A run that compares again under the deploy lease decides twice: the comparison tells the two apart.
        assert dimensions(document) == {"service": service, "Endpoint": "kmeans-dev", "Comparison": comparison}


def test_verify_endpoint_counts_the_rows_it_checked_and_those_that_differed(
    settings_env, lambda_context, monkeypatch, capsys
):
    app = load_handler("verify_endpoint", monkeypatch)
    check = EndpointVerification(passed=False, checked_rows=1000, differing_rows=37, error="EndpointVerificationFailed")
    monkeypatch.setattr(app, "verify_endpoint", lambda *args: check)
    capsys.readouterr()
    app.handler(event("verify_endpoint"), lambda_context)
    (document,), _ = printed(capsys)
    assert metric_values(document) == {"VerificationRowsChecked": 1000, "VerificationRowsDiffering": 37}
    assert dimensions(document)["Endpoint"] == "kmeans-dev"


def test_the_scoring_api_counts_records_scored_flagged_refused_and_unseen_levels_per_model_and_refused_requests(
    settings_env, lambda_context, monkeypatch, capsys
):
    app = load_handler("score_records", monkeypatch)
    answers = iter(
        [
            ScoreResponse(
                200, {"model": "m", "records": 12, "scored": 10, "anomalies": 3, "unseenLevels": 1, "errors": 2}
            ),
            ScoreResponse(503, {"error": "Endpoint kmeans-dev serves no model yet: run the pipeline first"}),
        ]
    )
    monkeypatch.setattr(app, "score_records", lambda *args, **kwargs: next(answers))
    capsys.readouterr()
    assert app.handler(event("score_records"), lambda_context)["statusCode"] == 200
    assert app.handler(event("score_records"), lambda_context)["statusCode"] == 503
    documents, logs = printed(capsys)
    assert [metric_values(d) for d in documents] == [
        {"RecordsScored": 10, "RecordsFlagged": 3, "RecordsRefused": 2, "UnseenLevels": 1},
        {"RequestsRefused": 1},
    ]
    assert all(dimensions(d)["Endpoint"] == "kmeans-dev" for d in documents)
    assert dimensions(documents[0])["Model"] == "m"  # per serving model
    assert [line["message"] for line in logs] == ["Records scored", "Request refused"]


def test_metrics_switched_off_write_nothing(settings_env, lambda_context, monkeypatch, capsys):
    app = load_handler("verify_endpoint", monkeypatch)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setattr(app, "verify_endpoint", lambda *args: EndpointVerification(passed=True, checked_rows=5))
    capsys.readouterr()
    app.handler(event("verify_endpoint"), lambda_context)
    assert printed(capsys)[0] == []


def test_the_endpoint_is_one_dimension_across_the_emf_counts_the_drift_metrics_and_the_alarm(
    settings_env, lambda_context, monkeypatch, capsys
):
    """EMF counts and the drift check's PutMetricData name the endpoint's dimension alike, so they can be joined."""
    from kmeans_pipeline.schemas.results import DriftCheck
    from kmeans_pipeline.steps.check_drift import publish
    from offline.cfn import load_template

    app = load_handler("verify_endpoint", monkeypatch)
    monkeypatch.setattr(app, "verify_endpoint", lambda *args: EndpointVerification(passed=True, checked_rows=5))
    capsys.readouterr()
    app.handler(event("verify_endpoint"), lambda_context)
    (document,), _ = printed(capsys)
    emf = set(dimensions(document)) - {"service"}  # Powertools' own

    class CloudWatch:
        data: list = []

        def put_metric_data(self, Namespace, MetricData):  # noqa: N803 (boto3's names)
            self.data += MetricData

    cloudwatch = CloudWatch()
    check = DriftCheck(endpoint="kmeans-dev", window_start="s", window_end="e", records=5000, drift=False)
    check.column_psi = {"Amount": 0.01}
    publish(cloudwatch, NAMESPACE, check, datetime(2026, 12, 6, tzinfo=UTC))
    drift = {d["Name"] for datum in cloudwatch.data for d in datum["Dimensions"] if d["Value"] == "kmeans-dev"}
    alarm = load_template(ROOT / "template.yaml")["Resources"]["DriftAlarm"]["Properties"]["Dimensions"]
    assert emf == drift == {a["Name"] for a in alarm} == {"Endpoint"}
