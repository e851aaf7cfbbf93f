"""The deploy lease: one execution at a time compares with the serving model, deploys and checks the endpoint.

A conditional write in a small DynamoDB table, the pattern AWS documents for Step Functions concurrency ("Controlling
concurrency in distributed systems using AWS Step Functions", aws-samples/aws-stepfunctions-examples,
app-control-concurrency-with-dynamodb), as a lease with an expiry instead of a counter: an execution that dies
holding it (stopped, timed out) blocks the others only until ``expiresAt``, and the holder renews it while it works.

One item per guarded endpoint (key ``LockName`` = ``deploy#<endpoint>``):

    owner       S  the holder's execution ARN (OWNER is a DynamoDB reserved word: always a placeholder)
    expiresAt   N  epoch seconds; checked in every condition, so correctness never waits for TTL
    acquiredAt  S  ISO 8601, for people
    ttl         N  expiresAt + a day: DynamoDB's TTL deletes stale items some time later (clean-up only; TTL is
                   reserved too)

Acquiring again as the same owner succeeds and extends the lease (a retried step, or a renewal); releasing deletes
the item only if this owner still holds it, so a late release never frees another holder's lease. boto3 only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.run import RunConfig

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

GRACE_FOR_TTL = 86_400  # TTL deletes expired items within days, not at once: only clean-up rides on it
# How long a lease lasts past each renewal besides two poll intervals: the longest a holder's steps may take between
# renewals (evaluating again, creating the model, verifying, each with its retries). A holder that dies blocks the
# others for at most this long.
HOLD_MARGIN_SECONDS = 3600
ACQUIRE_CONDITION = "attribute_not_exists(LockName) OR expiresAt < :now OR #owner = :me"
RENEW_CONDITION = "#owner = :me AND expiresAt >= :now"
RELEASE_CONDITION = "#owner = :me"
_CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, and until when (epoch seconds)."""

    owner: str
    expires_at: int

    def until(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_name(endpoint: str) -> str:
    return f"deploy#{endpoint}"


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else int(now)


def _holder(item: dict[str, Any] | None) -> Holder | None:
    if not item:
        return None
    return Holder(item.get("owner", {}).get("S", "?"), int(item.get("expiresAt", {}).get("N", "0")))


def acquire(
    ddb: DynamoDBClient, table: str, endpoint: str, owner: str, seconds: int, now: int | None = None
) -> Holder | None:
    """None when ``owner`` now holds the lease for ``seconds`` (new, taken over after an expiry, or held already:
    then extended); otherwise who holds it, from ReturnValuesOnConditionCheckFailure."""
    now = _now(now)
    try:
        ddb.put_item(
            TableName=table,
            Item={
                "LockName": {"S": lock_name(endpoint)},
                "owner": {"S": owner},
                "expiresAt": {"N": str(now + seconds)},
                "acquiredAt": {"S": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
                "ttl": {"N": str(now + seconds + GRACE_FOR_TTL)},
            },
            ConditionExpression=ACQUIRE_CONDITION,
            ExpressionAttributeNames={"#owner": "owner"},
            # expiresAt is N, so :now must be N too (DynamoDB compares across types as false; moto 5.2.1 crashes).
            ExpressionAttributeValues={":now": {"N": str(now)}, ":me": {"S": owner}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
            raise
        return _holder(exc.response.get("Item")) or Holder("another execution", 0)  # type: ignore[arg-type]
    return None


def renew(ddb: DynamoDBClient, table: str, endpoint: str, owner: str, seconds: int, now: int | None = None) -> bool:
    """Extend ``owner``'s unexpired lease to ``seconds`` from now; False when it is no longer theirs."""
    now = _now(now)
    try:
        ddb.update_item(
            TableName=table,
            Key={"LockName": {"S": lock_name(endpoint)}},
            UpdateExpression="SET expiresAt = :until, #ttl = :ttl",
            ConditionExpression=RENEW_CONDITION,
            ExpressionAttributeNames={"#owner": "owner", "#ttl": "ttl"},
            ExpressionAttributeValues={
                ":me": {"S": owner},
                ":now": {"N": str(now)},
                ":until": {"N": str(now + seconds)},
                ":ttl": {"N": str(now + seconds + GRACE_FOR_TTL)},
            },
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED:
            return False
        raise
    return True


def release(ddb: DynamoDBClient, table: str, endpoint: str, owner: str) -> bool:
    """True when ``owner`` held the lease and it is gone; False when nobody or someone else holds it (this owner's
    expired and was taken): another holder's lease is never deleted."""
    try:
        ddb.delete_item(
            TableName=table,
            Key={"LockName": {"S": lock_name(endpoint)}},
            ConditionExpression=RELEASE_CONDITION,
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": {"S": owner}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED:
            return False
        raise
    return True


def holder(ddb: DynamoDBClient, table: str, endpoint: str) -> Holder | None:
    """Who holds the lease now (a strongly consistent read); None when nobody does or it has expired."""
    item = ddb.get_item(TableName=table, Key={"LockName": {"S": lock_name(endpoint)}}, ConsistentRead=True).get("Item")
    found = _holder(item)
    return found if found is not None and found.expires_at >= _now(None) else None


def lease_seconds(poll_seconds: int) -> int:
    """How long a lease lasts from its last renewal: the holder renews it on every status check of the endpoint."""
    return 2 * poll_seconds + HOLD_MARGIN_SECONDS


@dataclass(frozen=True)
class Lease:
    """One execution's deploy lease on one endpoint: where it lives, whose it is and how long it lasts."""

    ddb: DynamoDBClient
    table: str
    endpoint: str
    owner: str
    seconds: int

    def acquire(self) -> Holder | None:
        return acquire(self.ddb, self.table, self.endpoint, self.owner, self.seconds)

    def renew(self) -> bool:
        return renew(self.ddb, self.table, self.endpoint, self.owner, self.seconds)

    def release(self) -> bool:
        return release(self.ddb, self.table, self.endpoint, self.owner)


def run_lease(config: RunConfig, owner: str | None, table: str, ddb: DynamoDBClient | None = None) -> Lease | None:
    """This execution's lease on the run's endpoint (None for a step given no owner), lasting two poll intervals and
    a margin past each renewal; the DynamoDB client is made when none is given."""
    if owner is None:
        return None
    if not table:
        raise InvalidInputError("The function's environment names no deploy lease table (DEPLOY_LEASE_TABLE)")
    if ddb is None:
        from kmeans_pipeline.aws.clients import client

        ddb = client("dynamodb")
    return Lease(ddb, table, config.names.endpoint, owner, lease_seconds(config.poll_seconds))
