"""Summarize the scores: batch scoring's reduce.

It reads every worker's result (by its range's index), fails the batch if a worker saw the endpoint serve another
model (naming the range), composes their quote-state readings from the file's start
(:func:`kmeans_pipeline.data.ranges.compose`, the data step's merge's own) and either sends the ranges read under a
wrong assumption to be scored again from their first true row start, or, once every range's records are read right:
fails on the first problem in the file's structure, by its line in the file; removes the part file of a range a
record of the one before covers whole; writes ``scores/<name>/<execution>/summary.json`` (records, scored, flagged,
errors, records scored against another cluster than their closest, unseen levels, per cluster scored against, the
model) and removes the batch's working files. The state machine announces the summary on the topic.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kmeans_pipeline.aws.batch import AGAIN_ITEMS, ITEMS, SUMMARY, WORK, BatchFiles, result_name
from kmeans_pipeline.data.ranges import compose
from kmeans_pipeline.errors import ModelChanged
from kmeans_pipeline.schemas.scores import (
    ClusterCount,
    ScoreItem,
    ScoreMerge,
    ScorePlan,
    ScoreRangeResult,
    ScoreSummary,
)
from kmeans_pipeline.schemas.settings import StackSettings

READERS = 32


def finish_scores(settings: StackSettings, s3: Any, plan: ScorePlan) -> ScoreMerge:
    files = BatchFiles(s3, settings, plan.prefix)
    items = [ScoreItem.model_validate(item) for item in files.get_json(ITEMS)]
    names = [result_name(i.index) for i in items] + [result_name(i.index, again=True) for i in items]
    with ThreadPoolExecutor(min(READERS, len(names)), thread_name_prefix="scores-read") as pool:
        found = [None if f is None else ScoreRangeResult.model_validate(f) for f in pool.map(files.find_json, names)]
    firsts = found[: len(items)]
    agains = {i: result for i, result in enumerate(found[len(items) :]) if result is not None}
    if any(result is None for result in firsts):
        raise RuntimeError("a range of the batch has no result: the map did not score every range")
    where = f"s3://{plan.source.bucket}/{plan.source.key}"
    for result in [r for r in firsts if r is not None] + list(agains.values()):
        if result.model_changed is not None:
            raise ModelChanged(f"{where}: range {result.index}: {result.model_changed}")
    composed = compose(items, [r for r in firsts if r is not None], agains, where=lambda item: f"{where}: ")
    if composed.redo:
        files.put_json(AGAIN_ITEMS, [item.to_json() for item in composed.redo])
        return ScoreMerge(
            next="again", items_bucket=files.bucket, items_key=files.key(AGAIN_ITEMS), items=len(composed.redo)
        )
    # A record of the range before holds all of a covered range: what its first reading wrote is nobody's records.
    files.delete([first.part_key for _, first in composed.covered if first.part_key])
    summary = _summary(files, plan, [chosen.result for chosen in composed.chosen])
    files.put_json(SUMMARY, summary.to_json())
    files.delete(files.listed(WORK))
    return ScoreMerge(next="done", summary=summary)


def _summary(files: BatchFiles, plan: ScorePlan, chosen: list[ScoreRangeResult]) -> ScoreSummary:
    clusters: dict[int, list[int]] = {}
    for result in chosen:
        for cluster, (records, flagged) in result.clusters.items():
            counts = clusters.setdefault(int(cluster), [0, 0])
            counts[0] += records
            counts[1] += flagged
    return ScoreSummary(
        name=plan.name,
        execution=plan.execution,
        source=f"s3://{plan.source.bucket}/{plan.source.key}",
        output=files.uri(),
        summary=files.uri(SUMMARY),
        model=plan.model,
        endpoint_config=plan.endpoint_config,
        parts=len(chosen),
        records=sum(r.records for r in chosen),
        scored=sum(r.scored for r in chosen),
        flagged=sum(r.flagged for r in chosen),
        errors=sum(r.errors for r in chosen),
        referred=sum(r.referred for r in chosen),
        unseen_levels=sum(r.unseen_levels for r in chosen),
        clusters=[ClusterCount(cluster=c, records=n, flagged=f) for c, (n, f) in sorted(clusters.items())],
    )


def announcement(summary: ScoreSummary) -> str:
    """The summary as the topic's message says it."""
    share = summary.flagged / summary.scored if summary.scored else 0.0
    lines = [
        f"Batch {summary.name}: {summary.records:,} records of {summary.source} scored by model {summary.model}: "
        f"{summary.flagged:,} flagged as anomalies ({share:.2%} of {summary.scored:,} scored), "
        f"{summary.errors:,} could not be scored (their error column names the field).",
        f"{summary.referred:,} were closest to a small cluster and scored against the nearest other one "
        f"(reference_cluster); {summary.unseen_levels:,} hold a category level the model never saw (warnings).",
        f"Results: {summary.output}part-*.csv; summary: {summary.summary}",
        "Per cluster scored against (records, flagged):",
    ]
    lines += [f"  {c.cluster}: {c.records:,}, {c.flagged:,}" for c in summary.clusters]
    return "\n".join(lines)
