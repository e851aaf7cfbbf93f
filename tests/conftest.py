"""Shared fixtures: fake AWS credentials, a moto account with the stack's key and bucket, stack settings."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from kmeans_pipeline.settings import StackSettings
from offline import moto_patches
from offline.cfn import load_template

REGION = "us-east-1"
ACCOUNT = "123456789012"
IMAGE = f"382416733822.dkr.ecr.{REGION}.amazonaws.com/kmeans:1"
ROOT = Path(__file__).resolve().parent.parent

# The ASL's Retry waits at a hundredth of their length (offline/moto_patches.py, seam 7): as many retries, in the
# same order, without sitting out the back-off. OFFLINE_RETRY_SCALE=1 runs them at full length.
os.environ.setdefault(moto_patches.RETRY_SCALE_VARIABLE, "0.01")

# Every test starts from a new boto3 session (_aws_env, and each OfflineAWS), and each new session would read
# botocore's service models and endpoint rules from disk again (a tenth of a second per client). The files are the
# same for every session: the sessions share one loader, whose caches hold what they read. Sessions, credentials
# and clients stay per test.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)


def require(module: str) -> Any:
    """Import a development dependency; in CI its absence is a failure, elsewhere a skip."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module, reason=f"{module} is a development dependency (pip install -e '.[dev]')")


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    boto3.DEFAULT_SESSION = None


@pytest.fixture
def aws():
    with mock_aws():
        yield


@pytest.fixture
def kms_key_arn(aws) -> str:
    return boto3.client("kms", region_name=REGION).create_key(Description="pipeline")["KeyMetadata"]["Arn"]


@pytest.fixture
def bucket(aws, kms_key_arn) -> str:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="pipeline-data")
    s3.put_bucket_encryption(
        Bucket="pipeline-data",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_arn}}
            ]
        },
    )
    return "pipeline-data"


@pytest.fixture
def settings(kms_key_arn, bucket) -> StackSettings:
    return StackSettings(
        name_prefix="kmeans-dev",
        endpoint_name="kmeans-dev",
        data_bucket=bucket,
        kms_key_arn=kms_key_arn,
        sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/kmeans-sagemaker",
        kmeans_image_uri=IMAGE,
        default_k=3,
        resource_tags={"Project": "kmeans", "Environment": "dev", "Owner": "ml-platform"},
    )


@pytest.fixture
def settings_env(settings, monkeypatch) -> StackSettings:
    """The settings as the template passes them: environment variables."""
    for name, value in settings.model_dump().items():
        text = (
            json.dumps(value)
            if isinstance(value, dict)
            else ",".join(value)
            if isinstance(value, tuple)
            else str(value)
        )
        monkeypatch.setenv(name.upper(), text)
    return settings


class FakeContext:
    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


def put_csv(bucket: str, key: str, text: str | bytes) -> None:
    body = text.encode() if isinstance(text, str) else text
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=body)


def read_text(bucket: str, key: str) -> str:
    return boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def reset_faults(aws: Any) -> None:
    """Put an OfflineAWS shared by a module's tests back as it started: no injected crash, stand-in fault or
    slowed timing carries over into the next test (the endpoint and earlier executions do)."""
    aws.crashes.clear()
    aws.standin.faults.__init__()
    aws.standin.timing.__init__()


def without_endpoint(aws: Any) -> Any:
    """Delete the shared stack's endpoint by hand, if an earlier test made one, and wait until it is gone: the
    next run deploys it for the first time, as on a new stack."""
    from botocore.exceptions import ClientError

    sm = aws.client("sagemaker")
    try:
        sm.delete_endpoint(EndpointName=aws.endpoint_name)
    except ClientError:
        return aws  # never created
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            sm.describe_endpoint(EndpointName=aws.endpoint_name)
        except ClientError:
            return aws
        time.sleep(0.05)
    raise TimeoutError(f"endpoint {aws.endpoint_name} was not deleted within 30 s")
