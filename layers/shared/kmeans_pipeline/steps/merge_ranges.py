"""Merge the ranges: the data step's reduce.

It reads every worker's result (by its range's index, from S3), composes their quote-state readings from each
object's start (:func:`kmeans_pipeline.data.ranges.compose`, as batch scoring's summary does) and either sends the
ranges read under a wrong assumption to be read again from their first true row start, or, once every range's rows
are read right:

- reports the first problem in file order, with its line in the object (each worker counted its own lines);
- deletes the shards of the ranges a record of the range before covers whole (their first reading took lines inside
  that record for rows), and checks that the channels hold exactly the shards of the readings that hold, so the
  counts are what training and Evaluate read under the channels' prefixes;
- merges the statistics (counts, strata, Chan's update of means and M2, minima, integrality, levels, and the
  training rows with the smallest sample keys from every worker's sample: the keys are drawn per window of the
  object, so the merged sample is the one a single pass would keep, whatever the ranges and whichever finished
  first);
- checks the split as a whole and decides each column's treatment, as the single data step did, weighs the features
  by their correlations on the merged sample (``data.treatment.correlation_weights``, unless the run says
  ``featureWeights: equal``), and (when neither
  the run nor the stack sets k) chooses k from the merged sample of training rows
  (:func:`kmeans_pipeline.model.clusters.choose_k`); refuses a dataset description the run could not carry;
- writes the dataset's draft and, unless the features are the raw numbers, the items of "Write the treated
  features".
"""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from kmeans_pipeline.aws.s3 import source_header
from kmeans_pipeline.aws.work import AGAIN_ITEMS, CHANNELS, DRAFT, PLAN, TREAT_ITEMS, Work, check_channels, split_name
from kmeans_pipeline.data.header import parse_header
from kmeans_pipeline.data.ranges import compose
from kmeans_pipeline.data.split import check_counts
from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.data.treatment import (
    TreatmentLearner,
    correlation_weights,
    encode,
    raw_numbers,
    sample_capacity,
    sample_rows_below,
    sample_threshold,
)
from kmeans_pipeline.data.watch import Sameness, learns
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.model.clusters import CRITERION, candidate_range, choose_k
from kmeans_pipeline.schemas.dataset import Dataset, FeatureTreatment, KCandidate, KChoice, combined_source
from kmeans_pipeline.schemas.payload import too_large
from kmeans_pipeline.schemas.ranges import MergeResult, RangeItem, RangeResult, TreatItem
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

CHANNEL_CONTENT_TYPE = "text/csv;label_size=0"
READERS = 32


def _read_all(work: Work, names: list[str]) -> list[Any]:
    with ThreadPoolExecutor(min(READERS, max(len(names), 1)), thread_name_prefix="merge-read") as pool:
        return list(pool.map(work.find_json, names))


def merge_ranges(config: RunConfig, settings: StackSettings, s3: Any) -> MergeResult:
    work = Work(s3, config, settings)
    items = [RangeItem.model_validate(item) for item in work.get_json(PLAN)]
    firsts = [RangeResult.model_validate(r) for r in _read_all(work, [split_name(item.index) for item in items])]
    agains = {
        position: RangeResult.model_validate(found)
        for position, found in enumerate(_read_all(work, [split_name(item.index, again=True) for item in items]))
        if found is not None
    }
    named = len({item.part for item in items}) > 1
    composed = compose(
        items,
        firsts,
        agains,
        part=lambda item: item.part,
        where=lambda item: f"s3://{item.source.bucket}/{item.source.key}: " if named else "",
    )
    if composed.redo:
        work.put_json(AGAIN_ITEMS, [item.to_json() for item in composed.redo])
        return MergeResult(
            next="again",
            items_uri=work.uri(AGAIN_ITEMS),
            items_bucket=work.bucket,
            items_key=work.key(AGAIN_ITEMS),
            items=len(composed.redo),
        )
    # A range a record of the range before covers whole holds nobody's rows: what its first reading wrote goes.
    work.delete([key for _, first in composed.covered for key in first.train_keys + first.test_keys])
    chosen = [(c.item, c.result, c.lines_before) for c in composed.chosen]
    check_channels(work, CHANNELS, [key for _, result, _ in chosen for key in result.train_keys + result.test_keys])
    return _merge(config, settings, s3, work, items, chosen)


def _merge(
    config: RunConfig,
    settings: StackSettings,
    s3: Any,
    work: Work,
    items: list[RangeItem],
    chosen: list[tuple[RangeItem, RangeResult, int]],
) -> MergeResult:
    results = [result for _, result, _ in chosen]
    train_rows = sum(r.train_rows for r in results)
    test_rows = sum(r.test_rows for r in results)
    header, _ = source_header(s3, items[0].source)
    layout = parse_header(header, config.feature_columns, config.stratify_column)
    strata: Counter[str] = Counter()
    for r in results:
        strata.update(r.strata or {})
    check_counts(
        train_rows,
        test_rows,
        k=config.k or 2,
        strata=list(strata.values()) if config.stratify_column is not None else None,
        need=StratifiedSplitter(config.test_fraction, 0).rows_for_both(),
        stratify_column=config.stratify_column,
        test_fraction=config.test_fraction,
    )
    same = Sameness()
    for r in results:
        same.merge(r.first_row, r.varied)
    problem = same.problem(train_rows + test_rows, layout.names)
    if problem:
        raise DataValidationError(problem)
    train_keys = [key for r in results for key in r.train_keys]
    if len(train_keys) < settings.training_instance_count:
        raise DataValidationError(
            f"only {train_rows} training rows for {settings.training_instance_count} training instances: "
            "every instance needs a shard of its own (lower TrainingInstanceCount, or send more rows)"
        )
    treatment, sample = _treatment(config, work, results, layout.names)
    bucket = settings.data_bucket
    parts = list({item.part: item.source for item in items}.values())
    dataset = Dataset(
        train_uri=f"s3://{bucket}/{config.dataset_prefix}train/",
        test_uri=f"s3://{bucket}/{config.dataset_prefix}test/",
        train_rows=train_rows,
        test_rows=test_rows,
        train_shards=len(train_keys),
        treatment=treatment,
        skipped_blank_lines=sum(r.blank_lines for r in results),
        feature_columns=layout.names,
        feature_dim=treatment.feature_dim,
        content_type=CHANNEL_CONTENT_TYPE,
        source=combined_source(parts, config.source.bucket, config.source.key),
        k_choice=_k_choice(config, sample, treatment, train_rows),
    )
    problem = too_large(config, dataset)
    if problem:  # before the second map: the run could not carry this dataset through the state machine
        raise DataValidationError(problem)
    treat = not treatment.is_identity
    work.put_json(
        DRAFT, {"dataset": dataset.to_json(), "treat": treat, "ranges": [item.index for item, _, _ in chosen]}
    )
    if not treat:
        return MergeResult(next="done", train_rows=train_rows, test_rows=test_rows)
    treat_items = [
        TreatItem(
            index=item.index,
            lanes=item.lanes,
            train_keys=result.train_keys,
            test_keys=result.test_keys,
            source=item.source,
            start=result.start,
            end=result.end,
            gzip=item.gzip,
            lines_before=lines_before - (result.line_base - 1),
            named=len(parts) > 1,
        )
        for item, result, lines_before in chosen
    ]
    work.put_json(TREAT_ITEMS, [item.to_json() for item in treat_items])
    return MergeResult(
        next="treat",
        items_uri=work.uri(TREAT_ITEMS),
        items_bucket=work.bucket,
        items_key=work.key(TREAT_ITEMS),
        items=len(treat_items),
        train_rows=train_rows,
        test_rows=test_rows,
    )


def _k_choice(config: RunConfig, sample: np.ndarray | None, treatment: FeatureTreatment, train_rows: int) -> KChoice:
    """The run's or the stack's k, else the one the merged sample of training rows suggests (model.clusters)."""
    if config.k is not None:
        where = "the run's input (k)" if config.k_source == "run" else "the stack's DefaultK parameter"
        return KChoice(k=config.k, source=config.k_source, reason=f"k={config.k}: set by {where}")
    assert sample is not None  # drawn whenever k is to be chosen (watch.learns)
    Z, _ = encode(treatment, sample)
    choice = choose_k(Z, candidate_range(train_rows), seed=config.seed)
    return KChoice(
        k=choice.k,
        source="data",
        reason=choice.reason,
        criterion=CRITERION,
        candidates=[
            KCandidate(
                k=c.k,
                davies_bouldin=c.davies_bouldin if math.isfinite(c.davies_bouldin) else None,
                smallest_cluster=c.smallest_cluster,
            )
            for c in choice.candidates
        ],
        sample_rows=choice.sample_rows,
    )


def _treatment(
    config: RunConfig, work: Work, results: list[RangeResult], columns: list[str]
) -> tuple[FeatureTreatment, np.ndarray | None]:
    """Each column's treatment, and the merged sample of training rows it was decided on (None: nothing to learn)."""
    if not learns(config):
        return raw_numbers(columns), None
    parts = [r for r in results if r.learner is not None]
    dim = len(columns)
    states = [r.learner for r in parts if r.learner]
    threshold = sample_threshold(states, sample_capacity(dim))

    def drawn(result: RangeResult) -> tuple[np.ndarray, np.ndarray]:
        assert result.learner is not None
        rows = sample_rows_below(result.learner, threshold)
        if not rows or result.sample_key is None:
            return np.empty(0), np.empty((0, dim))
        data = work.get(result.sample_key, 0, rows * (dim + 1) * 8 - 1)  # the sample's rows by key: its first
        keyed = np.frombuffer(data, dtype="<f8").reshape(rows, dim + 1)
        return keyed[:, 0], keyed[:, 1:]

    with ThreadPoolExecutor(min(READERS, max(len(parts), 1)), thread_name_prefix="merge-sample") as pool:
        samples = list(pool.map(drawn, parts))
    learner = TreatmentLearner.merged(states, samples, dim)
    treatment = learner.decide(columns, config.treatments, config.standardize)
    if config.feature_weights == "correlation":
        treatment = correlation_weights(treatment, learner.sample)
    return treatment, learner.sample
