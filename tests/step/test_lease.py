"""The deploy lease (kmeans_pipeline.aws.lease) against moto's DynamoDB, and the table the stack makes for it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from kmeans_pipeline.aws import lease
from kmeans_pipeline.aws.lease import acquire, holder, lock_name, release, renew
from offline.runner import ROOT
from offline.stack import StackBuilder
from testkit.aws import REGION

TABLE = "kmeans-dev-deploy-lease"
A = "arn:aws:states:us-east-1:123456789012:execution:kmeans-dev-pipeline:run-a"
B = "arn:aws:states:us-east-1:123456789012:execution:kmeans-dev-pipeline:run-b"
T0 = 1_800_000_000


@pytest.fixture
def ddb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "LockName", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockName", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


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
