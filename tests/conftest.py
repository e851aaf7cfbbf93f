"""Fixtures only (shared helpers live in testkit/): fake AWS credentials, a moto account with the stack's key and
bucket, stack settings, a Lambda context."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from kmeans_pipeline.schemas.settings import StackSettings
from offline import moto_patches
from offline.cfn import load_template
from offline.runner import FakeLambdaContext
from testkit.aws import ACCOUNT, IMAGE, REGION

ROOT = Path(__file__).resolve().parent.parent

# The ASL's Retry waits at a hundredth of their length (offline/moto_patches.py, seam 7): as many retries, in the
# same order, without sitting out the back-off. OFFLINE_RETRY_SCALE=1 runs them at full length.
os.environ.setdefault(moto_patches.RETRY_SCALE_VARIABLE, "0.01")

# Every test starts from a new boto3 session (_aws_env, and each OfflineAWS), and each new session would read
# botocore's service models and endpoint rules from disk again (a tenth of a second per client). The files are the
# same for every session: the sessions share one loader, whose caches hold what they read. Sessions, credentials
# and clients stay per test.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)


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
    # The template's Globals give every function a metrics namespace; a handler a test calls directly gets one here.
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "kmeans-tests")
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


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext("test-function", memory=256, timeout=60)
