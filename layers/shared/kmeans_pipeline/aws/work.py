"""The data step's working files: what its plan, workers and reduce hand each other through S3, under the run's
``datasets/<run id>/work/`` (expired with the datasets), each written with SSE-KMS."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.clients import error_code
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings


class Work:
    """One run's working files: keys by name, JSON and raw bytes in and out."""

    def __init__(self, s3: Any, config: RunConfig, settings: StackSettings) -> None:
        self.s3, self.bucket = s3, settings.data_bucket
        self.prefix = f"{config.dataset_prefix}work/"
        self.extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn}

    def key(self, name: str) -> str:
        return self.prefix + name

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def put(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, ContentType=content_type, **self.extra)
        return self.key(name)

    def put_json(self, name: str, value: Any) -> str:
        return self.put(name, json.dumps(value, separators=(",", ":")).encode(), "application/json")

    def get(self, name: str, first: int | None = None, last: int | None = None) -> bytes:
        """The object's bytes, or only ``[first, last]`` of them."""
        ranged = {"Range": f"bytes={first}-{last}"} if first is not None else {}
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key(name), **ranged)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def get_json(self, name: str) -> Any:
        return json.loads(self.get(name))

    def find_json(self, name: str) -> Any | None:
        """The JSON at ``name``, or None where there is none."""
        try:
            return self.get_json(name)
        except ClientError as exc:
            if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise

    def delete(self, keys: list[str]) -> None:
        """Delete objects of this run's dataset (channel shards a range wrote under an assumption that failed)."""
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]]}
            )


def split_name(index: int, again: bool = False) -> str:
    return f"{'again' if again else 'split'}/{index:06d}.json"


def sample_name(index: int, again: bool = False) -> str:
    return f"{'again' if again else 'split'}/{index:06d}.sample"


def treated_name(index: int) -> str:
    return f"treated/{index:06d}.json"


PLAN = "ranges.json"
AGAIN_ITEMS = "again.json"
TREAT_ITEMS = "treat.json"
DRAFT = "dataset.json"
