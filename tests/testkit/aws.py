"""The moto account the tests run in, and small helpers around it."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
IMAGE = f"382416733822.dkr.ecr.{REGION}.amazonaws.com/kmeans:1"


def require(module: str) -> Any:
    """Import a development dependency; in CI its absence is a failure, elsewhere a skip."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module, reason=f"{module} is a development dependency (pip install -e '.[dev]')")


def put_csv(bucket: str, key: str, text: str | bytes) -> None:
    body = text.encode() if isinstance(text, str) else text
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=body)


def read_text(bucket: str, key: str) -> str:
    return boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read().decode()


class Recorder:
    """Every SageMaker request a client sends, with its parameters."""

    def __init__(self, client):
        self.calls: list[tuple[str, dict]] = []
        client.meta.events.register("provide-client-params.sagemaker.*", self._record)

    def _record(self, params, model, **_):
        self.calls.append((model.name, dict(params)))

    def requests(self, operation):
        return [params for name, params in self.calls if name == operation]
