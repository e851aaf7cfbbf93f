"""Summarize the scores: batch scoring's reduce.

It reads every worker's result (by its range's index), composes their quote-state readings from the file's start
(:func:`kmeans_pipeline.data.ranges.resolve`, as the data step's merge does) and either sends the ranges read under
a wrong assumption to be scored again from their first true row start, or, once every range's records are read
right: fails on the first problem in the file's structure, by its line in the file; removes the part file of a
range a record of the one before covers whole; writes ``scores/<name>/summary.json`` (records, scored, flagged,
errors, per closest cluster, the model) and removes the batch's working files. The state machine announces the
summary on the topic.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.batch import AGAIN_ITEMS, BatchFiles, result_name
from kmeans_pipeline.aws.clients import error_code
from kmeans_pipeline.data.ranges import reading_of, resolve, shift_line
from kmeans_pipeline.errors import DataValidationError
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
    files = BatchFiles(s3, settings, plan.name)
    items = [ScoreItem.model_validate(item) for item in files.get_json(plan.items_key)]

    def find(key: str) -> ScoreRangeResult | None:
        try:
            return ScoreRangeResult.model_validate(files.get_json(key))
        except ClientError as exc:
            if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise

    names = [files.work_key(result_name(i.index)) for i in items]
    names += [files.work_key(result_name(i.index, again=True)) for i in items]
    with ThreadPoolExecutor(min(READERS, len(names)), thread_name_prefix="scores-read") as pool:
        found = list(pool.map(find, names))
    firsts = found[: len(items)]
    agains = {i: result for i, result in enumerate(found[len(items) :]) if result is not None}
    if any(result is None for result in firsts):
        raise RuntimeError("a range of the batch has no result: the map did not score every range")
    readings = [reading_of(result) for result in firsts if result is not None]
    pieces, _ = resolve(readings, {i: reading_of(result) for i, result in agains.items()})
    redo, chosen, covered = [], [], []
    lines_before = 1
    for piece in pieces:
        item = items[piece.index]
        first = firsts[piece.index]
        assert first is not None
        if piece.again and piece.start is None:
            covered.append(first.part_key)  # a record of the range before holds all of it
            continue
        if piece.again and piece.index not in agains:
            redo.append(item.model_copy(update={"again_from": piece.start}))
            continue
        result = agains[piece.index] if piece.again else first
        if result.error is not None and not redo:
            where = f"s3://{plan.source.bucket}/{plan.source.key}: "
            raise DataValidationError(where + shift_line(result.error, lines_before - (result.line_base - 1)))
        chosen.append(result)
        lines_before += result.lines
    if redo:
        files.put_json(files.work_key(AGAIN_ITEMS), [item.to_json() for item in redo])
        return ScoreMerge(
            next="again", items_bucket=files.bucket, items_key=files.work_key(AGAIN_ITEMS), items=len(redo)
        )
    files.delete([key for key in covered if key])
    summary = _summary(files, plan, chosen)
    files.put_json(f"{files.prefix}summary.json", summary.to_json())
    _remove_work(files)
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
        source=f"s3://{plan.source.bucket}/{plan.source.key}",
        output=f"s3://{files.bucket}/{files.prefix}",
        summary=f"s3://{files.bucket}/{files.prefix}summary.json",
        model=plan.model,
        endpoint_config=plan.endpoint_config,
        parts=len(chosen),
        records=sum(r.records for r in chosen),
        scored=sum(r.scored for r in chosen),
        flagged=sum(r.flagged for r in chosen),
        errors=sum(r.errors for r in chosen),
        clusters=[ClusterCount(cluster=c, records=n, flagged=f) for c, (n, f) in sorted(clusters.items())],
    )


def announcement(summary: ScoreSummary) -> str:
    """The summary as the topic's message says it."""
    share = summary.flagged / summary.scored if summary.scored else 0.0
    lines = [
        f"Batch {summary.name}: {summary.records:,} records of {summary.source} scored by model {summary.model}: "
        f"{summary.flagged:,} flagged as anomalies ({share:.2%} of {summary.scored:,} scored), "
        f"{summary.errors:,} could not be scored (their error column names the field).",
        f"Results: {summary.output}part-*.csv; summary: {summary.summary}",
        "Per closest cluster (records, flagged):",
    ]
    lines += [f"  {c.cluster}: {c.records:,}, {c.flagged:,}" for c in summary.clusters]
    return "\n".join(lines)


def _remove_work(files: BatchFiles) -> None:
    keys = []
    for page in files.s3.get_paginator("list_objects_v2").paginate(Bucket=files.bucket, Prefix=f"{files.prefix}work/"):
        keys += [listed["Key"] for listed in page.get("Contents", [])]
    files.delete(keys)
