"""The model registry as the record of every model, through the offline stack: each run's model is a version with
its evidence, its status follows what happened (the gate, a person's answer with their name and comment, the
deployment), and the endpoint serves the registered version."""

from __future__ import annotations

import hashlib
import json

import pytest

from offline.runner import OfflineAWS
from offline.sample_data import generate

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
RUN = {"dataKey": KEY, "pollSeconds": 0, "maxTrainingJobs": 2, "gateTolerancePercent": 1000}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    sample = generate(tmp_path_factory.mktemp("registry"), rows=4000, seed=3)
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, KEY)
        gate = aws.run(RUN, "registry-gate", timeout=300)
        approved = aws.run({**RUN, "approval": True}, "registry-approved", timeout=300, approve=True)
        rejected = aws.run({**RUN, "approval": True}, "registry-rejected", timeout=300, approve=False)
        kept = aws.run({**RUN, "gateTolerancePercent": 0, "maxTrainingJobs": 1, "k": 2}, "registry-kept", timeout=300)
        yield aws, {"gate": gate, "approved": approved, "rejected": rejected, "kept": kept}


def version_of(aws, result) -> dict:
    (arn,) = [e["modelPackageArn"] for e in result.state_outputs("Register the model version")]
    return aws.client("sagemaker").describe_model_package(ModelPackageName=arn)


def test_every_evaluated_model_is_a_version_whose_status_matches_what_happened(runs):
    aws, results = runs
    assert [r.status for r in results.values()] == ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert results["kept"].output["outcome"] == "kept", results["kept"].output["evaluation"]["gate"]
    versions = {name: version_of(aws, result) for name, result in results.items()}
    assert [v["ModelPackageVersion"] for v in versions.values()] == [1, 2, 3, 4]
    gate, approved, rejected, kept = versions.values()
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
    assert len(listed["ModelPackageSummaryList"]) == 4


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
    approved = version_of(aws, results["approved"])
    assert model == results["approved"].output["model"]
    assert container == {"ModelPackageName": approved["ModelPackageArn"]}
    assert results["approved"].output["modelVersion"]["status"] == "Approved"
