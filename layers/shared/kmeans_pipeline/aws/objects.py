"""The objects a run or a batch owns under its own prefix (:class:`OwnedObjects`: the data step's working files and
channels, a scoring batch's folder), and reading an object's body. Light on imports: steps that ship no numpy use
it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.clients import error_code
from kmeans_pipeline.schemas.settings import StackSettings

# DeleteObjects takes at most 1,000 keys a request.
DELETE_BATCH = 1000
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def read_body(answer: Mapping[str, Any], limit: int | None = None) -> bytes:
    """A GetObject answer's bytes (at most ``limit``), its stream closed whatever happens."""
    body = answer["Body"]
    try:
        return body.read() if limit is None else body.read(limit)
    finally:
        body.close()


class ObjectsNotDeleted(RuntimeError):
    """S3 answered a DeleteObjects request (HTTP 200) with errors for some of its keys."""


class OwnedObjects:
    """The objects one run (``datasets/<run>/``) or one batch (``scores/<name>/<execution>/``) owns: every key
    under ``root``. Names are relative to it; what it writes is SSE-KMS with the stack's key; it deletes only keys
    under ``root``, and a key S3 does not delete is an error, never a silent leftover."""

    def __init__(self, s3: Any, settings: StackSettings, root: str) -> None:
        if not root.endswith("/"):
            raise ValueError(f"{root!r}: an owned prefix ends with '/'")
        self.s3, self.bucket, self.root = s3, settings.data_bucket, root
        self.extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn}

    def key(self, name: str) -> str:
        return self.root + name

    def uri(self, name: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def put(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, ContentType=content_type, **self.extra)
        return self.key(name)

    def put_json(self, name: str, value: Any) -> str:
        return self.put(name, json.dumps(value, separators=(",", ":")).encode(), "application/json")

    def get(self, name: str, first: int | None = None, last: int | None = None) -> bytes:
        """The object's bytes, or only ``[first, last]`` of them."""
        ranged = {"Range": f"bytes={first}-{last}"} if first is not None else {}
        return read_body(self.s3.get_object(Bucket=self.bucket, Key=self.key(name), **ranged))

    def get_json(self, name: str) -> Any:
        return json.loads(self.get(name))

    def find_json(self, name: str) -> Any | None:
        """The JSON at ``name``, or None where there is none."""
        try:
            return self.get_json(name)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise

    def listed(self, name: str) -> list[str]:
        """Every key under ``name`` (a folder of this prefix), in key order."""
        keys: list[str] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(name))
        for page in pages:
            keys += [listed["Key"] for listed in page.get("Contents", [])]
        return sorted(keys)

    def delete(self, keys: list[str]) -> None:
        """Delete these keys, all of them under ``root``; ObjectsNotDeleted names the keys S3 would not delete."""
        outside = [key for key in keys if not key.startswith(self.root)]
        if outside:
            raise ValueError(f"{outside[0]} is not under {self.root}: {len(outside)} key(s) this prefix does not own")
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            answer = self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
            errors = answer.get("Errors") or []
            if errors:  # HTTP 200 all the same: botocore retried nothing (a step never sleeps: the state machine may)
                first = errors[0]
                raise ObjectsNotDeleted(
                    f"S3 did not delete {len(errors)} of {len(batch)} object(s) under s3://{self.bucket}/{self.root}: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )
