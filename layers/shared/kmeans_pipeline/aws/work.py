"""The data step's working files: what its plan, workers and reduce hand each other through S3, under the run's
``datasets/<run id>/work/`` (expired with the datasets), each written with SSE-KMS. The run owns everything under
``datasets/<run id>/``: its channels too, which only it deletes (:class:`~kmeans_pipeline.aws.s3.OwnedObjects`)."""

from __future__ import annotations

from typing import Any

from kmeans_pipeline.aws.objects import OwnedObjects
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

WORK = "work/"


class ChannelsInconsistent(RuntimeError):
    """A run's channel folders hold other objects than the ranges that count wrote: a bug, never a data problem."""


class Work(OwnedObjects):
    """One run's objects (``datasets/<run id>/``): names relative to it, the working files under ``work/``."""

    def __init__(self, s3: Any, config: RunConfig, settings: StackSettings) -> None:
        super().__init__(s3, settings, config.dataset_prefix)


def split_name(index: int, again: bool = False) -> str:
    return f"{WORK}{'again' if again else 'split'}/{index:06d}.json"


def sample_name(index: int, again: bool = False) -> str:
    return f"{WORK}{'again' if again else 'split'}/{index:06d}.sample"


def treated_name(index: int) -> str:
    return f"{WORK}treated/{index:06d}.json"


PLAN = f"{WORK}ranges.json"
AGAIN_ITEMS = f"{WORK}again.json"
TREAT_ITEMS = f"{WORK}treat.json"
DRAFT = f"{WORK}dataset.json"
# The channels the ranges write (each range its own shards), before and after treatment.
CHANNELS = ("train/", "test/")


def check_channels(work: Work, folders: tuple[str, ...], keys: list[str]) -> None:
    """The run's channel folders hold exactly ``keys``: training and Evaluate read every object under a channel's
    prefix, so a shard no counted range wrote (or one missing) would make the rows read differ from the counts."""
    listed = {key for folder in folders for key in work.listed(folder)}
    stray, missing = sorted(listed - set(keys)), sorted(set(keys) - listed)
    if stray or missing:
        first = (stray or missing)[0]
        raise ChannelsInconsistent(
            f"s3://{work.bucket}/{work.root}{{{','.join(folders)}}} holds {len(stray)} object(s) no counted range wrote "
            f"and lacks {len(missing)} it wrote (the first: {first})"
        )
