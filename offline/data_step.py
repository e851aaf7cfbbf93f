"""The data step's plan -> map -> reduce run in this process, in the order the state machine runs it: the same step
functions, with each Distributed Map's children on a thread pool. For tests of the data step without a state
machine, and for the bench; `statemachine/pipeline.asl.json` is what runs it in AWS (and offline in `make demo`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kmeans_pipeline.aws.work import AGAIN_ITEMS, PLAN, TREAT_ITEMS, Work
from kmeans_pipeline.schemas.dataset import Dataset
from kmeans_pipeline.schemas.ranges import RangeItem, TreatItem
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import WINDOW_BYTES, StackSettings
from kmeans_pipeline.steps.finish_dataset import finish_dataset
from kmeans_pipeline.steps.merge_ranges import merge_ranges
from kmeans_pipeline.steps.plan_data import plan_data
from kmeans_pipeline.steps.split_range import split_range
from kmeans_pipeline.steps.treat_range import treat_range


def prepare_dataset(
    config: RunConfig,
    settings: StackSettings,
    s3: Any,
    workers: int = 4,
    range_bytes: int | None = None,
    window_bytes: int = WINDOW_BYTES,
) -> Dataset:
    """Plan, split every range (``workers`` at a time), merge (reading ranges again while the merge asks), write the
    treated features, finish: the Dataset the state machine's data step returns. ``range_bytes``: the ranges'
    size (default: the stack's RangeKilobytes), a whole number of ``window_bytes`` (the split's unit)."""
    work = Work(s3, config, settings)
    plan_data(config, settings, s3, range_bytes=range_bytes, window_bytes=window_bytes)

    def each(step: Any, items: list[Any]) -> None:
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="map-child") as pool:
            list(pool.map(lambda item: step(config, settings, s3, item), items))

    each(split_range, [RangeItem.model_validate(item) for item in work.get_json(PLAN)])
    while True:
        merged = merge_ranges(config, settings, s3)
        if merged.next != "again":
            break
        each(split_range, [RangeItem.model_validate(item) for item in work.get_json(AGAIN_ITEMS)])
    if merged.next == "treat":
        each(treat_range, [TreatItem.model_validate(item) for item in work.get_json(TREAT_ITEMS)])
    return finish_dataset(config, settings, s3)
