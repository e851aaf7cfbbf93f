"""Split a range: one worker of the data step's first Distributed Map (and of "Read ranges again").

The worker reads its byte range of the raw object, moved to line starts (:mod:`kmeans_pipeline.data.ranges`), and
checks and splits its rows exactly as the whole object was split before (:func:`kmeans_pipeline.data.split.
split_blocks`: the fast and exact paths, the first problem by line and column). The train/test draws are per window
of the object (:class:`~kmeans_pipeline.data.splitter.WindowSplitter`, seeded by the run's seed, the part and the
window), and a range is a whole number of windows: a row's fate does not depend on the ranges. It writes its own channel shards (``train/part-<range>-NNNNN.csv``, SSE-KMS) and, for the reduce, its result: counts,
the statistics the treatments need, its quote-state readings, and its first problem, with lines counted from its
own first line. A data problem is a result, not a failure: only the reduce knows whether it comes first in the
file, and whether this worker's reading assumed right where its rows start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from kmeans_pipeline.aws.range_reading import RangeReading
from kmeans_pipeline.aws.s3 import ShardedChannel, ranged_chunks, source_header
from kmeans_pipeline.aws.work import Work, sample_name, split_name
from kmeans_pipeline.data.blocks import RowBlock, block_span, header_and_blocks
from kmeans_pipeline.data.header import parse_header
from kmeans_pipeline.data.split import split_blocks
from kmeans_pipeline.data.splitter import WindowSplitter
from kmeans_pipeline.data.watch import Observed, Watch
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.schemas.ranges import RangeItem, RangeResult
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

CHANNEL_CONTENT_TYPE = "text/csv"
# Blocks are checked and split in this thread, as they are read (the reads keep their own threads): most of the
# work holds the GIL (numpy's parser, bytes scans, small arrays), and on this 2-core machine the pool and writer
# threads cost more in hand-offs than they gained (text, one range: 2.5-2.8 s one thread, 2.9-3.2 s with them,
# 15-20 MB more peak RSS; numeric2 the same either way; docs/benchmarks.md).
WORKERS = 1


def split_range(config: RunConfig, settings: StackSettings, s3: Any, item: RangeItem) -> dict:
    """Split one range, write its result for the reduce; returns a small summary (the Map's result per item)."""
    work = Work(s3, config, settings)
    again = item.again_from is not None
    header, _ = source_header(s3, item.source)
    layout = parse_header(
        header,
        config.feature_columns,
        config.stratify_column,
        [name for name, kind in config.treatments.items() if kind == "log"],
        list(config.treatments),
    )
    splitter = WindowSplitter(config.test_fraction, config.seed, item.part, item.window_bytes)
    watch = Watch(config, [config.seed, item.part, item.index])
    if again:  # the first reading's shards: written under an assumption that did not hold
        first = RangeResult.model_validate(work.get_json(split_name(item.index)))
        work.delete(first.train_keys + first.test_keys)
    extra = {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": settings.kms_key_arn,
        "ContentType": CHANNEL_CONTENT_TYPE,
    }
    name = f"part-{item.index:06d}{'a' if again else ''}-"
    shard_bytes = settings.shard_megabytes << 20
    train = ShardedChannel(
        s3,
        settings.data_bucket,
        f"{config.dataset_prefix}train/",
        shard_bytes=shard_bytes,
        lanes=item.lanes,
        extra=extra,
        name=name,
    )
    test = ShardedChannel(
        s3,
        settings.data_bucket,
        f"{config.dataset_prefix}test/",
        shard_bytes=shard_bytes,
        lanes=1,
        extra=extra,
        name=name,
    )
    reading = None if item.gzip else RangeReading(s3, item.source, item.start, item.end, item.again_from)
    error = None
    counts = None
    blocks: Iterator[RowBlock] | None = None
    try:
        if reading is None:
            chunks = ranged_chunks(s3, item.source)
            # a gzip object is read whole, its lines numbered from its header
            _, blocks = header_and_blocks(chunks, window_bytes=block_span(item.window_bytes))
        else:
            blocks = reading.blocks(block_span(item.window_bytes))
        counts = split_blocks(
            blocks, layout, splitter, train, Observed(test, watch.test), on_train=watch.train, workers=WORKERS
        )
        train.close()
        test.close()
    except DataValidationError as exc:
        error = str(exc)
        train.abort()
        test.abort()
        if reading is not None:
            reading.drain()
    except BaseException:
        train.abort()
        test.abort()
        raise
    result = _result(item, reading, counts, error, watch, splitter, train.keys, test.keys)
    if config.stratify_column is not None and error is None:  # a range with a problem: how far it got is no count
        result.strata = {key.hex(): rows for key, rows in splitter.strata().items()}
    if watch.learner is not None and watch.learner.rows and error is None:
        keys, sample = watch.learner.keyed_sample()  # by key: the merge reads the first rows it needs
        result.sample_key = sample_name(item.index, again)
        work.put(result.sample_key, np.column_stack([keys, sample]).astype("<f8").tobytes())
        result.sample_rows = len(sample)
    work.put_json(split_name(item.index, again), result.to_json())
    return {"index": item.index, "rows": result.train_rows + result.test_rows, "problem": error is not None}


def _result(
    item: RangeItem,
    reading: RangeReading | None,
    counts: Any,
    error: str | None,
    watch: Watch,
    splitter: WindowSplitter,
    train_keys: list[str],
    test_keys: list[str],
) -> RangeResult:
    fields: dict[str, Any] = {
        "index": item.index,
        "part": item.part,
        "train_keys": train_keys,
        "test_keys": test_keys,
        "error": error,
        "first_row": watch.same.first.decode() if watch.same.first else None,
        "varied": watch.same.varied,
        "learner": watch.learner.state() if watch.learner is not None and error is None else None,
    }
    if counts is not None:
        fields.update(train_rows=counts.train, test_rows=counts.test, blank_lines=counts.blank)
    if reading is None:  # gzip: the whole object, numbered from its header
        size = item.source.size
        return RangeResult(start=0, end=size, aligned_end=size, line_base=2, lines=0, **fields)
    return RangeResult(**reading.result_fields(), **fields)
