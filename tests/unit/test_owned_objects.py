"""A run's and a batch's objects (kmeans_pipeline.aws.s3.OwnedObjects, the one home of Work and BatchFiles): a key
S3's DeleteObjects answers with an error (HTTP 200, the key in ``Errors``) fails the step instead of staying behind,
and nothing outside the owner's prefix is ever deleted."""

from __future__ import annotations

import pytest

from kmeans_pipeline.aws.batch import BatchFiles, batch_root
from kmeans_pipeline.aws.objects import ObjectsNotDeleted, OwnedObjects
from kmeans_pipeline.aws.work import Work


class DeletingS3:
    """DeleteObjects that answers with ``errors`` (one list per call, then none)."""

    def __init__(self, *errors: list[dict]) -> None:
        self.errors = list(errors)
        self.calls: list[list[str]] = []

    def delete_objects(self, Bucket, Delete):
        self.calls.append([o["Key"] for o in Delete["Objects"]])
        return {"Errors": self.errors.pop(0)} if self.errors else {}


def test_a_key_s3_would_not_delete_is_an_error_naming_it(settings):
    s3 = DeletingS3([{"Key": "datasets/r1/train/part-000001-00000.csv", "Code": "AccessDenied", "Message": "no"}])
    owned = OwnedObjects(s3, settings, "datasets/r1/")
    with pytest.raises(ObjectsNotDeleted, match="part-000001-00000.csv: AccessDenied no"):
        owned.delete(["datasets/r1/train/part-000000-00000.csv", "datasets/r1/train/part-000001-00000.csv"])
    assert len(s3.calls) == 1  # a refusal is not tried again


def test_every_batch_of_a_thousand_keys_is_checked(settings):
    keys = [f"scores/a/x/part-{i:06d}.csv" for i in range(1500)]
    s3 = DeletingS3([], [{"Key": keys[1200], "Code": "InternalError", "Message": "try again"}])
    with pytest.raises(ObjectsNotDeleted, match=r"1 of 500 object\(s\) .*part-001200.csv: InternalError try again"):
        BatchFiles(s3, settings, batch_root("a", "x")).delete(keys)
    assert [len(call) for call in s3.calls] == [1000, 500]


def test_nothing_outside_the_owners_prefix_is_deleted(settings):
    s3 = DeletingS3()
    with pytest.raises(ValueError, match="not under scores/daily/exec-1/"):
        BatchFiles(s3, settings, batch_root("daily", "exec-1")).delete(
            ["scores/daily/exec-1/part-000000-00000.csv", "scores/daily/exec-2/part-000000-00000.csv"]
        )
    with pytest.raises(ValueError, match="not under datasets/r1/"):
        OwnedObjects(s3, settings, "datasets/r1/").delete(["datasets/r10/train/part-000000-00000.csv"])
    assert s3.calls == []


def test_work_and_batch_files_are_owned_objects_of_their_run_and_execution(settings):
    from kmeans_pipeline.steps.resolve_run import resolve_run

    config = resolve_run({"dataKey": "incoming/x.csv"}, "owned", "2026-12-06T10:00:00.000Z", settings, None)
    assert Work(None, config, settings).root == config.dataset_prefix
    assert BatchFiles(None, settings, batch_root("daily/2026-12-06", "e1")).root == "scores/daily/2026-12-06/e1/"
    with pytest.raises(ValueError):
        BatchFiles(None, settings, "datasets/x/")
