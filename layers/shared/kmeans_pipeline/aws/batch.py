"""Where a scoring batch keeps its files: each execution owns ``scores/<name>/<execution>/``, which holds its part
files and its summary, and ``work/`` under it, what its plan, workers and summary hand each other (deleted once the
batch is summarized); each written with SSE-KMS. Two batches of one name (a file uploaded again, or two at once)
never touch each other's files."""

from __future__ import annotations

from typing import Any

from kmeans_pipeline.aws.objects import OwnedObjects
from kmeans_pipeline.schemas.settings import StackSettings

SCORES = "scores/"
WORK = "work/"


def batch_root(name: str, execution: str) -> str:
    """The prefix one execution's batch owns: ``scores/<name>/<execution>/``."""
    return f"{SCORES}{name}/{execution}/"


class BatchFiles(OwnedObjects):
    """One batch's objects: names relative to ``scores/<name>/<execution>/``."""

    def __init__(self, s3: Any, settings: StackSettings, root: str) -> None:
        if not root.startswith(SCORES):
            raise ValueError(f"{root!r}: a batch's files are under {SCORES}")
        super().__init__(s3, settings, root)


def result_name(index: int, again: bool = False) -> str:
    return f"{WORK}{'again' if again else 'scored'}/{index:06d}.json"


def part_name(index: int) -> str:
    return f"part-{index:06d}.csv"


ITEMS = f"{WORK}ranges.json"
AGAIN_ITEMS = f"{WORK}again.json"
SUMMARY = "summary.json"
