"""The model registry as the record of every model, through the offline stack: each run's model is a version with
its evidence, its status follows what happened (the gate, a person's answer with their name and comment, the
deployment), and the endpoint serves the registered version."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from offline.runner import OfflineAWS
from offline.sample_data import generate

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
RUN = {"dataKey": KEY, "pollSeconds": 0, "maxTrainingJobs": 2, "gateTolerancePercent": 1000}


def waiting_for_approval(aws, arn: str, timeout: float = 300) -> str:
    """The task token of the execution's approval request, once it waits for one."""
    deadline = time.monotonic() + timeout
    while not (requests := aws.approval_requests(arn)):
        assert time.monotonic() < deadline, f"{arn} never asked for approval"
        time.sleep(0.1)
    return requests[0]["token"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    sample = generate(tmp_path_factory.mktemp("registry"), rows=4000, seed=3)
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, KEY)
        gate = aws.run(RUN, "registry-gate", timeout=300)
        approved = aws.run({**RUN, "approval": True}, "registry-approved", timeout=300, approve=True)
        rejected = aws.run({**RUN, "approval": True}, "registry-rejected", timeout=300, approve=False)
        kept = aws.run({**RUN, "gateTolerancePercent": 0, "maxTrainingJobs": 1, "k": 2}, "registry-kept", timeout=300)
        # A run compared with the approved model waits for a person while another run deploys: once approved, it
        # compares again under the deploy lease, with the model serving then.
        compared = aws.start({**RUN, "approval": True}, "registry-compared")
        waiting_for_approval(aws, compared)
        overtaking = aws.run(RUN, "registry-overtaking", timeout=300)
        compared = aws.wait(compared, timeout=300, approve=True)
        # The approval task itself fails (not its timeout): the run fails with its cause, the version says so.
        broken = aws.start({**RUN, "approval": True}, "registry-broken-approval")
        aws.client("stepfunctions").send_task_failure(
            taskToken=waiting_for_approval(aws, broken), error="ApprovalSystemDown", cause="the tool is offline"
        )
        broken = aws.wait(broken, timeout=300)
        yield (
            aws,
            {
                "gate": gate,
                "approved": approved,
                "rejected": rejected,
                "kept": kept,
                "compared": compared,
                "overtaking": overtaking,
                "broken": broken,
            },
        )


def version_of(aws, result) -> dict:
    (arn,) = [e["modelPackageArn"] for e in result.state_outputs("Register the model version")]
    return aws.client("sagemaker").describe_model_package(ModelPackageName=arn)


def test_every_evaluated_model_is_a_version_whose_status_matches_what_happened(runs):
    aws, results = runs
    statuses = [r.status for r in results.values()]
    assert statuses == ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert results["kept"].output["outcome"] == "kept", results["kept"].output["evaluation"]["gate"]
    versions = {name: version_of(aws, result) for name, result in results.items()}
    assert [v["ModelPackageVersion"] for v in versions.values()] == [1, 2, 3, 4, 5, 6, 7]
    gate, approved, rejected, kept, *_ = versions.values()
    assert gate["ModelApprovalStatus"] == "Approved"
    assert gate["ApprovalDescription"].startswith("Approved by the quality gate (no person asked): first deploy")
    assert gate["CustomerMetadataProperties"]["ApprovalMode"] == "gate"
    assert gate["CustomerMetadataProperties"]["Deployed"] == "true"
    assert approved["ModelApprovalStatus"] == "Approved"
    assert approved["ApprovalDescription"].startswith("Approved by offline runner")
    assert approved["CustomerMetadataProperties"]["ApprovedBy"] == "offline runner"
    assert rejected["ModelApprovalStatus"] == "Rejected"
    assert rejected["ApprovalDescription"] == "Rejected by offline runner: rejected by --reject"
    assert rejected["CustomerMetadataProperties"]["RejectedBy"] == "offline runner"
    assert kept["ModelApprovalStatus"] == "Rejected"
    assert kept["ApprovalDescription"].startswith("Rejected by the quality gate: ")
    assert kept["CustomerMetadataProperties"]["GateDecision"] == "keep"
    listed = aws.client("sagemaker").list_model_packages(
        ModelPackageGroupName=aws.stack.outputs["ModelPackageGroupName"]
    )
    assert len(listed["ModelPackageSummaryList"]) == 7


def test_a_version_holds_the_evidence_a_reviewer_reads(runs):
    aws, results = runs
    version = version_of(aws, results["approved"])
    config = results["approved"].output
    meta = version["CustomerMetadataProperties"]
    assert meta["RunId"] == config["runId"] and meta["K"] == str(config["k"])
    assert meta["DatasetUri"] == f"s3://{aws.bucket}/{KEY}" and int(meta["TrainRows"]) > int(meta["TestRows"]) > 0
    assert meta["Treatment"] == "tranCode=category Amount=log" and meta["GateDecision"] == "promote"
    assert meta["ExecutionId"].endswith(":registry-approved")
    # The report is the evidence, with a digest of exactly its bytes.
    source = version["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert source["S3Uri"] == config["evaluation"]["reportUri"] == meta["ReportUri"]
    bucket, key = source["S3Uri"][5:].split("/", 1)
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert source["ContentDigest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert version["ModelPackageDescription"].startswith(f"Run {config['runId']}: promote: ")
    card = json.loads(version["ModelCard"]["ModelCardContent"])
    assert version["ModelCard"]["ModelCardStatus"] == "Approved"
    assert card["intended_uses"]["risk_rating"] == "Medium" and source["S3Uri"] in json.dumps(card)
    assert version["SecurityConfig"]["KmsKeyId"] == aws.kms_key_arn
    rejected = version_of(aws, results["rejected"])
    assert rejected["ModelCard"]["ModelCardStatus"] == "Archived"


def test_the_endpoint_serves_the_registered_version(runs):
    aws, results = runs
    sm = aws.client("sagemaker")
    served = sm.describe_endpoint(EndpointName=aws.endpoint_name)["EndpointConfigName"]
    model = sm.describe_endpoint_config(EndpointConfigName=served)["ProductionVariants"][0]["ModelName"]
    container = sm.describe_model(ModelName=model)["PrimaryContainer"]
    serving = version_of(aws, results["overtaking"])
    assert model == results["overtaking"].output["model"]
    assert container == {"ModelPackageName": serving["ModelPackageArn"]}
    assert results["approved"].output["modelVersion"]["status"] == "Approved"


def evidence(aws, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_a_run_that_compares_again_keeps_every_digest_true(runs):
    aws, results = runs
    result = results["compared"]
    assert "Compare with the model serving now" in [e.state for e in result.states], "it did not compare again"
    version = version_of(aws, result)
    meta = version["CustomerMetadataProperties"]
    # The registered report is the one the first comparison wrote, byte for byte, and its figures are its own.
    source = version["ModelMetrics"]["ModelQuality"]["Statistics"]
    report_body = evidence(aws, source["S3Uri"])
    assert source["ContentDigest"] == "sha256:" + hashlib.sha256(report_body).hexdigest()
    report = json.loads(report_body)
    (first,) = result.state_outputs("Evaluate model")
    assert report["gate"] == first["gate"] and meta["GateDecision"] == first["gate"]["decision"]
    assert float(meta["NewMsd"]) == pytest.approx(report["gate"]["newMsd"], rel=1e-5)
    assert meta["ServingModel"] == report["gate"]["servingModel"] == results["approved"].output["model"]
    # The final comparison is its own object, named in the metadata with the digest of its bytes and its figures.
    (final,) = result.state_outputs("Compare with the model serving now")
    assert final["reportUri"] == source["S3Uri"] and meta["FinalComparisonUri"] == final["comparisonUri"]
    comparison_body = evidence(aws, meta["FinalComparisonUri"])
    assert meta["FinalComparisonDigest"] == "sha256:" + hashlib.sha256(comparison_body).hexdigest()
    comparison = json.loads(comparison_body)
    assert comparison["gate"] == final["gate"] and comparison["reportUri"] == source["S3Uri"]
    assert comparison["reportDigest"] == source["ContentDigest"]
    assert meta["FinalGateDecision"] == final["gate"]["decision"]
    assert meta["FinalServingModel"] == results["overtaking"].output["model"] != meta["ServingModel"]
    assert float(meta["FinalNewMsd"]) == pytest.approx(final["gate"]["newMsd"], rel=1e-5)


def test_the_flagged_share_is_stored_as_a_fraction(runs):
    aws, results = runs
    meta = version_of(aws, results["gate"])["CustomerMetadataProperties"]
    share = results["gate"].output["evaluation"]["flaggedShare"]
    assert 0 < share < 1 and float(meta["FlaggedShare"]) == pytest.approx(share, rel=1e-5)


def test_only_the_version_the_endpoint_serves_says_it_serves(runs):
    aws, results = runs
    versions = {name: version_of(aws, result) for name, result in results.items()}
    meta = {name: v["CustomerMetadataProperties"] for name, v in versions.items()}
    arn = {name: v["ModelPackageArn"] for name, v in versions.items()}
    # Each deployment marked the version it replaced; the one serving now is the last deployed.
    assert (meta["gate"]["Serving"], meta["gate"]["ReplacedBy"]) == ("false", arn["approved"])
    assert (meta["approved"]["Serving"], meta["approved"]["ReplacedBy"]) == ("false", arn["overtaking"])
    assert meta["approved"]["ReplacedByRun"] == results["overtaking"].output["runId"]
    assert [name for name in versions if meta[name].get("Serving") == "true"] == ["overtaking"]
    assert all(versions[name]["ModelApprovalStatus"] == "Approved" for name in ("gate", "approved", "overtaking"))
    sm = aws.client("sagemaker")
    served = sm.describe_endpoint(EndpointName=aws.endpoint_name)["EndpointConfigName"]
    model = sm.describe_endpoint_config(EndpointConfigName=served)["ProductionVariants"][0]["ModelName"]
    assert sm.describe_model(ModelName=model)["PrimaryContainer"] == {"ModelPackageName": arn["overtaking"]}


def test_a_failed_approval_task_leaves_its_version_rejected_with_the_cause(runs):
    aws, results = runs
    broken = results["broken"]
    assert (broken.error, broken.cause) == ("ApprovalSystemDown", "Ask for approval failed: the tool is offline")
    version = version_of(aws, broken)
    assert version["ModelApprovalStatus"] == "Rejected"
    assert version["ApprovalDescription"] == "Not deployed: the run failed. Ask for approval: the tool is offline"
    assert version["CustomerMetadataProperties"]["RunFailed"] == "true"
