"""Where a scoring batch keeps its files: ``scores/<name>/`` holds its part files and its summary, and
``scores/<name>/work/`` what its plan, workers and summary hand each other (deleted once the batch is summarized),
each written with SSE-KMS."""

from __future__ import annotations

import json
from typing import Any

from kmeans_pipeline.schemas.settings import StackSettings

SCORES = "scores/"


class BatchFiles:
    def __init__(self, s3: Any, settings: StackSettings, name: str) -> None:
        self.s3, self.bucket = s3, settings.data_bucket
        self.prefix = f"{SCORES}{name}/"
        self.extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn}

    def work_key(self, name: str) -> str:
        return f"{self.prefix}work/{name}"

    def put_json(self, key: str, value: Any) -> str:
        body = json.dumps(value, separators=(",", ":")).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **self.extra)
        return key

    def get_json(self, key: str) -> Any:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            return json.loads(body.read())
        finally:
            body.close()

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]]}
            )


def result_name(index: int, again: bool = False) -> str:
    return f"{'again' if again else 'scored'}/{index:06d}.json"


def part_name(index: int) -> str:
    return f"part-{index:06d}.csv"


ITEMS = "ranges.json"
AGAIN_ITEMS = "again.json"
