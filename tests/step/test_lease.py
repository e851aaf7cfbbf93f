"""The deploy lease (kmeans_pipeline.aws.lease) against moto's DynamoDB, and the table the stack makes for it."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from kmeans_pipeline.aws import lease
from kmeans_pipeline.aws.lease import acquire, holder, lock_name, release, renew, run_lease
from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.steps.check_endpoint import check_endpoint
from kmeans_pipeline.steps.deploy_endpoint import deploy_endpoint
from kmeans_pipeline.steps.deploy_lease import deploy_lease
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.runner import ROOT
from offline.stack import StackBuilder
from testkit.aws import REGION, Recorder

TABLE = "kmeans-dev-deploy-lease"
A = "arn:aws:states:us-east-1:123456789012:execution:kmeans-dev-pipeline:run-a"
B = "arn:aws:states:us-east-1:123456789012:execution:kmeans-dev-pipeline:run-b"
T0 = 1_800_000_000


def lease_table_in_moto() -> Any:
    """The lease table as the template declares its key, in the running moto."""
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "LockName", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "LockName", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@pytest.fixture
def ddb():
    with mock_aws():
        yield lease_table_in_moto()


def owner(ddb) -> str | None:
    item = ddb.get_item(TableName=TABLE, Key={"LockName": {"S": lock_name("ep")}}, ConsistentRead=True).get("Item")
    return item and item["owner"]["S"]


def test_the_first_acquire_wins_and_the_second_is_told_who_holds_it_until_when(ddb):
    assert acquire(ddb, TABLE, "ep", A, 3600, now=T0) is None
    busy = acquire(ddb, TABLE, "ep", B, 3600, now=T0 + 10)
    assert busy == lease.Holder(A, T0 + 3600) and busy.until() == "2027-01-15T09:00:00Z"
    assert owner(ddb) == A


def test_acquiring_again_as_the_holder_succeeds_and_extends_the_lease(ddb):
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0) is None
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0 + 50) is None  # a retried step, or a renewal
    assert acquire(ddb, TABLE, "ep", B, 60, now=T0 + 100) == lease.Holder(A, T0 + 110)


def test_an_expired_lease_is_taken_over_and_the_expiry_is_strict(ddb):
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0) is None
    assert acquire(ddb, TABLE, "ep", B, 60, now=T0 + 60) is not None  # expiresAt < :now
    assert acquire(ddb, TABLE, "ep", B, 60, now=T0 + 61) is None
    assert owner(ddb) == B


def test_only_the_holder_releases_and_a_late_release_leaves_the_new_holder(ddb):
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0) is None
    assert release(ddb, TABLE, "ep", B) is False and owner(ddb) == A
    assert release(ddb, TABLE, "ep", A) is True and owner(ddb) is None
    assert release(ddb, TABLE, "ep", A) is False  # released twice (a retried release state): nothing happens
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0) is None
    assert acquire(ddb, TABLE, "ep", B, 60, now=T0 + 120) is None  # A's expired and B took it
    assert release(ddb, TABLE, "ep", A) is False and owner(ddb) == B


def test_renew_only_while_held_and_unexpired(ddb):
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0) is None
    assert renew(ddb, TABLE, "ep", A, 600, now=T0 + 30) is True
    assert acquire(ddb, TABLE, "ep", B, 60, now=T0 + 100) is not None  # renewed: still A's
    assert renew(ddb, TABLE, "ep", B, 600, now=T0 + 100) is False
    assert renew(ddb, TABLE, "ep", A, 600, now=T0 + 700) is False  # expired at T0 + 630
    assert renew(ddb, TABLE, "other", A, 600, now=T0) is False


def test_leases_of_different_endpoints_are_independent(ddb):
    assert acquire(ddb, TABLE, "ep", A, 60, now=T0) is None
    assert acquire(ddb, TABLE, "other", B, 60, now=T0) is None


def test_holder_reads_who_holds_an_unexpired_lease(ddb):
    assert holder(ddb, TABLE, "ep") is None
    assert acquire(ddb, TABLE, "ep", A, 3600) is None
    assert holder(ddb, TABLE, "ep").owner == A
    assert acquire(ddb, TABLE, "other", A, 60, now=1_000) is None  # long expired
    assert holder(ddb, TABLE, "other") is None


def test_other_errors_are_not_taken_for_a_busy_lease(ddb):
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        acquire(ddb, "no-such-table", "ep", A, 60)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        release(ddb, "no-such-table", "ep", A)


def test_owner_and_ttl_are_reserved_words_in_moto_as_in_dynamodb(ddb):
    """Why the expressions use #owner and #ttl: without a placeholder DynamoDB (and moto) refuse them."""
    with pytest.raises(ClientError, match="reserved keyword"):
        ddb.delete_item(
            TableName=TABLE,
            Key={"LockName": {"S": "x"}},
            ConditionExpression="owner = :me",
            ExpressionAttributeValues={":me": {"S": A}},
        )


def test_moto_does_not_expire_items_by_ttl_so_the_condition_must(ddb):
    assert acquire(ddb, TABLE, "ep", A, 1, now=1) is None  # ttl long past
    assert owner(ddb) == A
    assert acquire(ddb, TABLE, "ep", B, 60) is None  # taken over by the expiry in the condition


def test_the_stack_makes_the_table_encrypted_with_its_key_with_pitr_ttl_and_tags():
    with mock_aws():
        builder = StackBuilder(ROOT, "lease", REGION)
        deployed = builder.deploy()
        ddb = boto3.client("dynamodb", region_name=REGION)
        name = deployed.physical["DeployLeaseTable"]
        assert name == "kmeans-dev-deploy-lease"
        table = ddb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == [{"AttributeName": "LockName", "KeyType": "HASH"}]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        sse = table["SSEDescription"]
        assert (sse["Status"], sse["SSEType"]) == ("ENABLED", "KMS")
        assert sse["KMSMasterKeyArn"] == deployed.outputs["KmsKeyArn"]
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]}
        assert tags == {"Project": "kmeans", "Environment": "dev", "Owner": "ml-platform"}
        assert deployed.arns["DeployLeaseTable"] == table["TableArn"]


# ------------------------------------------------------------------------------------------------------------
# The lease step and the steps that renew it (moto's DynamoDB and SageMaker)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def lease_table(aws):
    return lease_table_in_moto()


def run_config(settings, **request):
    return resolve_run({"dataKey": "incoming/t.csv", **request}, "lease-run", START, settings, None)


def serve(sagemaker, name: str) -> None:
    """Make `name` the model the endpoint serves (moto: created InService at once)."""
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
        PrimaryContainer={"Image": "img", "ModelDataUrl": f"s3://b/models/{name}/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    try:
        sagemaker.create_endpoint(EndpointName="kmeans-dev", EndpointConfigName=name)
    except ClientError:
        sagemaker.update_endpoint(EndpointName="kmeans-dev", EndpointConfigName=name)


START = "2026-11-23T10:00:00.000Z"


def test_taking_the_lease_with_nothing_serving_deploys_on_the_first_gates_decision(settings, lease_table):
    config = run_config(settings)
    mine = run_lease(config, A, TABLE, lease_table)
    status = deploy_lease(config, "acquire", mine, None, START, boto3.client("sagemaker", region_name=REGION))
    assert (status.held, status.serving_model, status.compare_again) == (True, None, False)
    assert status.tolerance_percent == config.gate_tolerance_percent
    assert holder(lease_table, TABLE, "kmeans-dev").owner == A
    # The lease lasts two poll intervals and the margin past each renewal.
    assert mine.seconds == 2 * config.poll_seconds + lease.HOLD_MARGIN_SECONDS


# This execution's start against the serving model's CreationTime (now): a model made after the start was made by
# an execution that overlapped this one.
BEFORE_THE_MODEL, AFTER_THE_MODEL = "2000-01-01T00:00:00Z", "2099-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("evaluated_against", "started", "compare_again", "tolerance"),
    [
        ("kmeans-dev-serving1", AFTER_THE_MODEL, False, 5.0),  # what the gate compared with still serves
        ("kmeans-dev-older00", AFTER_THE_MODEL, True, 5.0),  # another execution deployed since: compare again
        (None, AFTER_THE_MODEL, True, 5.0),
        ("kmeans-dev-serving1", BEFORE_THE_MODEL, True, 0.0),  # an overlapping execution's: the better one serves
    ],
)
def test_the_lease_says_whether_to_compare_again_and_with_what_tolerance(
    settings, lease_table, evaluated_against, started, compare_again, tolerance
):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    serve(sagemaker, "kmeans-dev-serving1")
    config = run_config(settings, gateTolerancePercent=5)
    mine = run_lease(config, A, TABLE, lease_table)
    status = deploy_lease(config, "acquire", mine, evaluated_against, started, sagemaker)
    assert (status.held, status.serving_model) == (True, "kmeans-dev-serving1")
    assert (status.compare_again, status.tolerance_percent) == (compare_again, tolerance)


def test_a_busy_lease_names_its_holder_and_expiry_and_a_release_frees_only_ones_own(settings, lease_table):
    config = run_config(settings)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert deploy_lease(config, "acquire", run_lease(config, A, TABLE, lease_table), None, START, sagemaker).held
    busy = deploy_lease(config, "acquire", run_lease(config, B, TABLE, lease_table), None, START, sagemaker)
    assert (busy.held, busy.holder) == (False, A) and busy.expires_at and A in busy.reason
    assert (
        deploy_lease(config, "release", run_lease(config, B, TABLE, lease_table), None, None, sagemaker).released
        is False
    )
    assert (
        deploy_lease(config, "release", run_lease(config, A, TABLE, lease_table), None, None, sagemaker).released
        is True
    )
    assert (
        deploy_lease(config, "release", run_lease(config, A, TABLE, lease_table), None, None, sagemaker).released
        is False
    )
    assert deploy_lease(config, "acquire", run_lease(config, B, TABLE, lease_table), None, START, sagemaker).held


def test_a_lease_without_a_table_or_owner(settings):
    config = run_config(settings)
    assert run_lease(config, None, TABLE) is None  # a step given no owner renews nothing
    with pytest.raises(InvalidInputError, match="DEPLOY_LEASE_TABLE"):
        run_lease(config, A, "")


def test_the_deploy_step_starts_nothing_without_its_lease(settings, lease_table):
    config = run_config(settings)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    recorder = Recorder(sagemaker)
    assert acquire(lease_table, TABLE, "kmeans-dev", B, 3600) is None  # another execution holds it
    result = deploy_endpoint(
        config, "kmeans-dev-newconfig1", settings, sagemaker, run_lease(config, A, TABLE, lease_table)
    )
    assert result.action == "leaseLost" and "another execution took it" in result.cause
    assert recorder.calls == []  # not even a DescribeEndpoint


def test_the_deploy_step_and_each_endpoint_check_renew_the_lease(settings, lease_table):
    config = run_config(settings)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert acquire(lease_table, TABLE, "kmeans-dev", A, 60, now=int(time.time()) - 30) is None
    before = holder(lease_table, TABLE, "kmeans-dev").expires_at
    serve(sagemaker, "kmeans-dev-newconfig1")
    mine = run_lease(config, A, TABLE, lease_table)
    assert deploy_endpoint(config, "kmeans-dev-newconfig1", settings, sagemaker, mine).action == "inProgress"
    renewed = holder(lease_table, TABLE, "kmeans-dev").expires_at
    assert renewed > before + 3000
    status = check_endpoint(config, "kmeans-dev-newconfig1", sagemaker, None, mine)
    assert (status.outcome, status.lease_renewed) == ("inService", True)
    assert release(lease_table, TABLE, "kmeans-dev", A)
    assert check_endpoint(config, "kmeans-dev-newconfig1", sagemaker, None, mine).lease_renewed is False
    assert check_endpoint(config, "kmeans-dev-newconfig1", sagemaker).lease_renewed is None
