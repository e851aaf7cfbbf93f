"""The quality gate's and the endpoint check's logic, without AWS: promote, keep, first deploy, models trained in
other units, request batching under the payload limit, retries, and what counts as a wrong answer."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from botocore.exceptions import ClientError

from kmeans_pipeline.aws.serving import batches, parse_answer
from kmeans_pipeline.data.treatment import raw_numbers
from kmeans_pipeline.errors import EndpointAnswerError, SageMakerThrottlingError, SageMakerUnavailableError
from kmeans_pipeline.model.scoring import score
from kmeans_pipeline.model.tolerance import check, power
from kmeans_pipeline.schemas.dataset import ColumnTreatment, Dataset, FeatureTreatment, KChoice, SourceObject
from kmeans_pipeline.steps.evaluate_model import gate, msd, serving_side
from kmeans_pipeline.steps.resolve_run import resolve_run
from kmeans_pipeline.steps.verify_endpoint import invoke
from testkit.reports import evaluation_report

RNG = np.random.default_rng(7)
CENTERS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
X = np.concatenate([c + RNG.normal(size=(200, 2)) for c in CENTERS])
SERVING = {"modelName": "kmeans-dev-0123456789", "modelDataUrl": "s3://b/m.tar.gz", "endpointConfigName": "c"}


def standardized(mean, std, features=("tranCode", "Amount")) -> FeatureTreatment:
    return FeatureTreatment(
        columns=[
            ColumnTreatment(column=c, kind="numeric", standardize=True, mean=m, std=s)
            for c, m, s in zip(features, mean, std)
        ]
    )


def to_standardized(X, treatment: FeatureTreatment) -> np.ndarray:
    mean = np.array([c.mean for c in treatment.columns])
    std = np.array([c.std for c in treatment.columns])
    return (np.asarray(X) - mean) / std


def dataset(treatment=None, features=("tranCode", "Amount")):
    return Dataset(
        train_uri="s3://b/t/",
        test_uri="s3://b/s/",
        train_rows=10,
        test_rows=10,
        skipped_blank_lines=0,
        feature_columns=list(features),
        feature_dim=len(features),
        content_type="text/csv;label_size=0",
        source=SourceObject(bucket="b", key="k", etag="e", size=1),
        treatment=treatment,
        k_choice=KChoice(k=3, source="run", reason="k=3: set by the run's input (k)"),
    )


def config(settings, tolerance=5.0):
    return resolve_run(
        {"dataKey": "k", "gateTolerancePercent": tolerance}, "gate", "2026-11-23T10:00:00Z", settings, None
    )


def test_the_first_deploy_always_promotes(settings):
    decision = gate(X, msd(X, CENTERS), dataset(), config(settings), None, None, None)
    assert decision.decision == "promote" and "first deploy" in decision.reason and decision.serving_msd is None


@pytest.mark.parametrize(
    ("new_worse_by", "tolerance", "decision"),
    [(0.0, 0.0, "promote"), (0.04, 5.0, "promote"), (0.06, 5.0, "keep"), (0.5, 100.0, "promote")],
)
def test_promote_only_within_the_tolerance_of_the_serving_models_score(settings, new_worse_by, tolerance, decision):
    serving_msd = msd(X, CENTERS)
    result = gate(
        X,
        serving_msd * (1 + new_worse_by),
        dataset(),
        config(settings, tolerance),
        SERVING,
        CENTERS.astype(np.float32),
        raw_numbers(["tranCode", "Amount"]),
    )
    assert result.decision == decision
    assert result.serving_msd == pytest.approx(serving_msd) and result.serving_model == SERVING["modelName"]


def test_a_serving_model_with_other_statistics_is_scored_in_this_runs_units(settings):
    # Both runs z-scored their features, each with its own training statistics: the same centres must give the same
    # score once mapped through both.
    theirs = standardized([3.0, 4.0], [5.0, 2.0])
    ours = standardized([1.0, -2.0], [4.0, 3.0])
    serving_centroids = to_standardized(CENTERS, theirs).astype(np.float32)
    Z = to_standardized(X, ours)
    result = gate(
        Z,
        msd(Z, to_standardized(CENTERS, ours)),
        dataset(ours),
        config(settings, 0.0),
        SERVING,
        serving_centroids,
        theirs,
    )
    assert result.serving_msd == pytest.approx(msd(Z, to_standardized(CENTERS, ours)), rel=1e-5)
    assert result.decision == "promote" and "not comparable" not in result.reason


def test_a_change_of_treatment_is_not_comparable_and_the_new_model_is_deployed(settings):
    # The serving model was trained on z-scored features, the new one on raw numbers (or with Amount as log).
    theirs = standardized([3.0, 4.0], [5.0, 2.0])
    result = gate(X, 1e9, dataset(), config(settings, 0.0), SERVING, CENTERS.astype(np.float32), theirs)
    assert result.decision == "promote" and "not comparable" in result.reason
    assert "column tranCode was treated as numeric, z-scored, now as numeric" in result.reason
    logged = FeatureTreatment(
        columns=[
            ColumnTreatment(column="tranCode", kind="numeric"),
            ColumnTreatment(column="Amount", kind="log", standardize=True, mean=1, std=1),
        ]
    )
    raw = raw_numbers(["tranCode", "Amount"])
    result = gate(X, 1e9, dataset(logged), config(settings, 0.0), SERVING, CENTERS.astype(np.float32), raw)
    assert (
        result.decision == "promote" and "column Amount was treated as numeric, now as log, z-scored" in result.reason
    )
    levels = [
        FeatureTreatment(columns=[ColumnTreatment(column="tranCode", kind="category", levels=lv)])
        for lv in ([1, 2], [1, 2, 3])
    ]
    result = gate(
        X[:, :2],
        1e9,
        dataset(levels[1], features=("tranCode",)),
        config(settings, 0.0),
        SERVING,
        CENTERS[:, :2].astype(np.float32),
        levels[0],
    )
    assert result.decision == "promote" and "had the levels [1.0, 2.0], now [1.0, 2.0, 3.0]" in result.reason


def test_other_feature_columns_are_not_comparable_and_the_new_features_are_deployed(settings):
    theirs = raw_numbers(["Amount"])
    result = gate(X, 1e9, dataset(), config(settings, 0.0), SERVING, CENTERS[:, :1].astype(np.float32), theirs)
    assert result.decision == "promote" and "not comparable" in result.reason


def test_requests_stay_under_the_payload_limit_and_cover_every_row_once():
    rows = RNG.normal(size=(5000, 3))
    pieces = batches(rows, limit=10_000)
    assert all(len(body) <= 10_000 for _, body in pieces) and len(pieces) > 5
    texts = b"\n".join(body for _, body in pieces).split(b"\n")
    np.testing.assert_array_equal(np.array([[float(v) for v in t.split(b",")] for t in texts]), rows)
    assert [start for start, _ in pieces] == sorted({start for start, _ in pieces})


class FlakyRuntime:
    def __init__(self, failures: int, code: str = "ThrottlingException"):
        self.failures, self.code, self.calls = failures, code, 0

    def invoke_endpoint(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError({"Error": {"Code": self.code, "Message": "slow down"}}, "InvokeEndpoint")
        return {"Body": type("B", (), {"read": lambda self: b'{"predictions": []}'})()}


def test_throttling_goes_to_the_state_machines_retry_and_a_refusal_fails_the_check():
    # Retried by the state machine (no Lambda sleeps): the step's Retry names these errors.
    with pytest.raises(SageMakerThrottlingError, match="InvokeEndpoint"):
        invoke(FlakyRuntime(1), "e", b"1,2")
    with pytest.raises(SageMakerUnavailableError, match="ModelNotReadyException"):
        invoke(FlakyRuntime(1, "ModelNotReadyException"), "e", b"1,2")
    # A model that refuses the rows fails its check (and the previous config goes back).
    with pytest.raises(EndpointAnswerError, match="ModelError"):
        invoke(FlakyRuntime(1, "ModelError"), "e", b"1,2")
    assert invoke(FlakyRuntime(0), "e", b"1,2") == b'{"predictions": []}'


def test_no_lambda_sleeps_waiting_is_the_state_machines_job():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = [p for folder in ("layers/shared/kmeans_pipeline", "functions") for p in (root / folder).rglob("*.py")]
    assert code and not [str(p) for p in code if "sleep(" in p.read_text()]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not K-Means' JSON"),
        (
            json.dumps({"predictions": [{"closest_cluster": 0, "distance_to_cluster": 1.0}]}).encode(),
            "1 predictions for 2 rows",
        ),
        (
            json.dumps({"predictions": [{"closest_cluster": 3.0, "distance_to_cluster": 1.0}] * 2}).encode(),
            "not a cluster of 0..2",
        ),
        (
            json.dumps({"predictions": [{"closest_cluster": 0.5, "distance_to_cluster": 1.0}] * 2}).encode(),
            "not a cluster",
        ),
        (
            json.dumps({"predictions": [{"closest_cluster": 0, "distance_to_cluster": -1}] * 2}).encode(),
            "finite distance",
        ),
        (json.dumps({"predictions": [{"cluster": 0}] * 2}).encode(), "malformed"),
    ],
)
def test_malformed_answers_are_named(payload, message):
    with pytest.raises(EndpointAnswerError, match=message):
        parse_answer(payload, 2, 3, "request 1")


def test_answers_equal_to_float32_precision_pass_and_anything_else_is_a_mismatch():
    closest, distance = score(X, CENTERS)
    assert check(X, CENTERS, closest, distance.astype(np.float64)) == (0, None)
    assert check(X, CENTERS, closest, distance * (1 + 1e-7)) == (0, None)  # float32 rounding
    differing, first = check(X, CENTERS, closest, distance * 1.001)
    # 0.1 % is beyond float32's error bound on every row whose distance float32 resolves that finely (most here;
    # model.tolerance.power says which), and the message counts them.
    resolved = power(X, CENTERS, relative=0.001) * len(X)
    assert abs(differing - resolved) <= 0.02 * len(X) and f"{differing} of {len(X)} rows differ" in first
    shifted = (closest + 1) % 3
    assert "says cluster" in check(X, CENTERS, shifted, distance)[1]


def test_a_serving_model_that_cannot_be_read_is_named_and_the_new_one_deployed(settings):
    raw = raw_numbers(["tranCode", "Amount"])
    result = gate(X, 1e9, dataset(), config(settings, 0.0), SERVING, None, raw)
    assert (
        result.decision == "promote"
        and "cannot be compared" in result.reason
        and SERVING["modelDataUrl"] in result.reason
    )
    result = gate(X, 1e9, dataset(), config(settings, 0.0), SERVING, CENTERS, None, "its report is not valid")
    assert result.decision == "promote" and "cannot be compared: its report is not valid" in result.reason


class _Bucket:
    """An S3 client whose model artifacts have expired, holding at most one report."""

    def __init__(self, report: object = None):
        self.report = report

    def get_object(self, Bucket, Key, **kwargs):
        if Key.startswith("reports/") and self.report is not None:
            return {"Body": io.BytesIO(json.dumps(self.report).encode())}
        raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")

    def head_object(self, **kwargs):
        raise ClientError({"Error": {"Code": "404", "Message": "gone"}}, "HeadObject")


def test_an_expired_serving_artifact_is_replaced_by_its_reports_centroids(settings):
    theirs = standardized([1.0, 2.0], [3.0, 4.0])
    serving = {**SERVING, "modelDataUrl": "s3://b/models/x/model.tar.gz"}
    centroids, treatment, problem = serving_side(
        serving, _Bucket(evaluation_report(CENTERS.tolist(), treatment=theirs)), "b"
    )
    np.testing.assert_allclose(centroids, to_standardized(CENTERS, theirs), rtol=1e-6)
    assert treatment == theirs and problem == ""
    Z = to_standardized(X, theirs)
    result = gate(Z, msd(Z, centroids), dataset(theirs), config(settings, 0.0), SERVING, centroids, treatment)
    assert result.serving_msd == pytest.approx(msd(Z, centroids), rel=1e-5) and result.decision == "promote"


def test_a_serving_model_without_a_valid_report_cannot_be_compared_and_the_report_names_why(settings):
    # No report: a model this pipeline did not train. Its features are unknown, so it is not compared.
    assert serving_side(SERVING, _Bucket(), "b") == (
        None,
        None,
        f"it has no evaluation report at s3://b/reports/{SERVING['modelName'].rsplit('-', 1)[-1]}/report.json",
    )
    # A report that does not validate: the problem names the field.
    broken = evaluation_report(CENTERS.tolist(), thresholds={"overall": 1.0, "perCluster": []})
    centroids, treatment, problem = serving_side(SERVING, _Bucket(broken), "b")
    assert centroids is None and treatment is None
    assert "is not a valid evaluation report: thresholds.perCluster has 0 values for k=3" in problem
    result = gate(X, 1e9, dataset(), config(settings, 0.0), SERVING, centroids, treatment, problem)
    assert result.decision == "promote" and "thresholds.perCluster has 0 values for k=3" in result.reason


def test_the_restore_never_deletes_an_endpoint_this_run_did_not_create(settings):
    from kmeans_pipeline.steps.verify_endpoint import restore

    class Recorder:
        calls: list = []

        def __getattr__(self, name):
            return lambda **kw: self.calls.append((name, kw)) or {"EndpointStatus": "InService"}

    sm = Recorder()
    cfg = config(settings)
    assert restore(cfg, None, False, sm) == ("unknown", None) and sm.calls == []
    assert restore(cfg, "old", False, sm) == ("updating", "old")
    assert sm.calls[-1] == ("update_endpoint", {"EndpointName": cfg.names.endpoint, "EndpointConfigName": "old"})
    assert restore(cfg, None, True, sm) == ("deleted", None) and sm.calls[-1][0] == "delete_endpoint"


def test_a_failed_restore_keeps_the_checks_failure_and_says_who_must_act(settings, monkeypatch):
    from kmeans_pipeline.schemas.results import ModelCreated
    from kmeans_pipeline.steps import verify_endpoint as verify

    monkeypatch.setattr(verify, "read_rows", lambda *a: X)
    monkeypatch.setattr(verify, "read_centroids", lambda *a, **k: CENTERS.astype(np.float32))

    class WrongRuntime:
        def invoke_endpoint(self, Body, **kwargs):
            rows = Body.count(b"\n") + 1
            body = json.dumps({"predictions": [{"closest_cluster": 0, "distance_to_cluster": 99.0}] * rows}).encode()
            return {"Body": type("B", (), {"read": lambda self: body})()}

    class BusyEndpoint:
        def describe_endpoint(self, **kwargs):
            return {"EndpointStatus": "InService", "EndpointConfigName": "kmeans-dev-new"}

        def update_endpoint(self, **kwargs):
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Cannot update in-progress endpoint"}},
                "UpdateEndpoint",
            )

    model = ModelCreated(model_name="m", endpoint_config_name="kmeans-dev-new", model_data_url="s3://b/m.tar.gz")
    cfg = config(settings).model_copy(update={"k": 3})
    check = verify.verify_endpoint(cfg, dataset(), model, "kmeans-dev-old", False, None, BusyEndpoint(), WrongRuntime())
    assert not check.passed and check.restore == "failed" and check.error == "EndpointVerificationFailed"
    assert "disagree with the model's centroids" in check.cause and "Cannot update in-progress endpoint" in check.cause
    assert "kmeans-dev-new still serves" in check.cause and "needs an operator" in check.cause


@pytest.mark.parametrize(
    "endpoint",
    [
        {"EndpointStatus": "InService", "EndpointConfigName": "kmeans-dev-later"},
        {
            "EndpointStatus": "Updating",
            "EndpointConfigName": "kmeans-dev-new",
            "PendingDeploymentSummary": {"EndpointConfigName": "kmeans-dev-later"},
        },
    ],
)
def test_an_endpoint_another_run_took_over_is_neither_checked_nor_put_back(settings, monkeypatch, endpoint):
    # Two runs at once: putting "the previous config" back would undo the later run's deployment.
    from kmeans_pipeline.schemas.results import ModelCreated
    from kmeans_pipeline.steps import verify_endpoint as verify

    monkeypatch.setattr(verify, "read_rows", lambda *a: X)

    class Endpoint:
        calls: list = []

        def describe_endpoint(self, **kwargs):
            return endpoint

        def __getattr__(self, name):
            return lambda **kw: self.calls.append(name)

    class NoRuntime:
        def invoke_endpoint(self, **kwargs):
            raise AssertionError("a superseded endpoint must not be scored")

    model = ModelCreated(model_name="m", endpoint_config_name="kmeans-dev-new", model_data_url="s3://b/m.tar.gz")
    sm = Endpoint()
    check = verify.verify_endpoint(config(settings), dataset(), model, "kmeans-dev-old", False, None, sm, NoRuntime())
    assert (check.passed, check.error, check.restore) == (False, "EndpointSuperseded", "none")
    assert "kmeans-dev-later" in check.cause and sm.calls == []
