"""The data step's core: validate CSV bytes and split them into train and test channel bytes, in bounded memory.

The object's blocks of rows (:mod:`~kmeans_pipeline.data.blocks`) are each checked and split one of two ways: the
fast path (:mod:`~kmeans_pipeline.data.fast`) takes every well-formed block, and anything else goes through the
exact path (:mod:`~kmeans_pipeline.data.exact`), which accepts the block or names the line and column that is
wrong. Both paths give rows the same fate: the train/test assignment is decided per block by
:class:`~kmeans_pipeline.data.splitter.StratifiedSplitter`, from the row count (and strata) only, in block order.
Blocks are scanned on a small thread pool while the next ones are read and the finished ones written (see
:func:`split_stream`); peak memory is a constant multiple of ``BLOCK_BYTES``, whatever the input's size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from kmeans_pipeline.data.blocks import BLOCK_BYTES, RoutedBlock, RowBlock, header_and_blocks
from kmeans_pipeline.data.exact import split_exact
from kmeans_pipeline.data.fast import route, scan
from kmeans_pipeline.data.header import Layout, parse_header
from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.errors import DataValidationError


class BinaryWriter(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class SplitResult:
    feature_columns: list[str]
    train_rows: int
    test_rows: int
    blank_lines: int


class _Now:
    """A result computed in the calling thread, with a future's ``result``."""

    def __init__(self, value: object) -> None:
        self._value = value

    def result(self) -> object:
        return self._value


def default_workers() -> int:
    """The cores this process may use (a 3 GB Lambda has two), at most four."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def split_stream(
    chunks: Iterable[bytes],
    train: BinaryWriter,
    test: BinaryWriter,
    *,
    feature_columns: list[str] | None = None,
    stratify_column: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    k: int = 1,
    block_bytes: int = BLOCK_BYTES,
    on_train: Callable[[bytes], None] | None = None,
    workers: int | None = None,
    nonnegative_columns: list[str] | None = None,
    treated_columns: list[str] | None = None,
) -> SplitResult:
    """Validate every row of a CSV object and write its feature rows, header-less, to train or test.

    ``on_train`` sees every piece of the training channel as it is written, in order (the data step uses it to
    compute the training set's statistics in the same pass). The rows go through :func:`split_blocks`; the
    counts are then checked as a whole (:func:`check_counts`).
    """
    header, blocks = header_and_blocks(chunks, block_bytes)
    layout = parse_header(header, feature_columns, stratify_column, nonnegative_columns, treated_columns)
    splitter = StratifiedSplitter(test_fraction, seed)
    counts = split_blocks(blocks, layout, splitter, train, test, on_train=on_train, workers=workers)
    stratified = layout.stratify is not None
    check_counts(
        counts.train,
        counts.test,
        k=k,
        strata=splitter.strata_sizes() if stratified else None,
        need=splitter.rows_for_both(),
        stratify_column=layout.header[layout.stratify] if layout.stratify is not None else None,
        test_fraction=test_fraction,
    )
    return SplitResult(layout.names, counts.train, counts.test, counts.blank)


@dataclass
class Counts:
    """What :func:`split_blocks` wrote: rows to each channel, blank lines skipped, lines read (newlines)."""

    train: int = 0
    test: int = 0
    blank: int = 0
    lines: int = 0


def split_blocks(
    blocks: Iterator[RowBlock],
    layout: Layout,
    splitter: StratifiedSplitter,
    train: BinaryWriter,
    test: BinaryWriter,
    *,
    on_train: Callable[[bytes], None] | None = None,
    workers: int | None = None,
) -> Counts:
    """Check and split blocks of rows (no header) in order, writing each channel's rows as they are done;
    DataValidationError names the first bad line, once the blocks before it are checked and written.

    With more than one worker (the default: one per core, see default_workers) blocks are scanned and routed on
    a thread pool (numpy releases the GIL) while this thread reads the next ones, and a writer thread writes
    the finished ones in order: reading, parsing and writing overlap. At most ``workers + 1`` blocks are in
    each stage, so memory stays a constant multiple of the block size. The result does not depend on the
    number of workers: the splitter draws for every block in order, in this thread.
    """
    workers = default_workers() if workers is None else max(1, workers)
    counts = Counts()
    depth = workers + 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="split") if workers > 1 else None
    writer = ThreadPoolExecutor(1, thread_name_prefix="split-write") if workers > 1 else None
    scans: deque[tuple[Any, RowBlock]] = deque()  # (future Scan or None, the block)
    routes: deque[Any] = deque()  # future RoutedBlock, in block order
    writes: deque[Any] = deque()

    def submit(executor: ThreadPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Any:
        return executor.submit(fn, *args) if executor is not None else _Now(fn(*args))

    def write(part: RoutedBlock) -> None:
        if part.train:
            train.write(part.train)
            if on_train is not None:
                on_train(part.train)
        if part.test:
            test.write(part.test)

    def emit(part: RoutedBlock) -> None:
        counts.train += part.rows - part.test_rows
        counts.test += part.test_rows
        counts.blank += part.blank
        counts.lines += part.lines
        writes.append(submit(writer, write, part))
        while len(writes) > 2:
            writes.popleft().result()

    def next_scan() -> None:  # the oldest block scanned: the splitter draws for it, in order
        future, block = scans.popleft()
        scanned = future.result()
        if scanned is None:
            routes.append(_Now(split_exact(block.data, block.first_line, layout, splitter)))
        else:
            routes.append(submit(pool, route, scanned, splitter.assign(scanned.rows, scanned.strata)))

    reader_error: DataValidationError | None = None
    try:
        while True:
            try:
                block = next(blocks, None)
            except DataValidationError as exc:
                reader_error = exc  # raised once the blocks before it are checked: the first bad line wins
                break
            if block is None:
                break
            if block.unbalanced:  # a record whose quoted field never closes: the exact path says where
                while scans:
                    next_scan()
                routes.append(
                    _Now(split_exact(block.data, block.first_line, layout, splitter, overlong=block.overlong))
                )
                continue
            scans.append((submit(pool, scan, block.data, layout), block))
            while len(scans) > depth:
                next_scan()
            while len(routes) > depth:
                emit(routes.popleft().result())
        while scans:
            next_scan()
        while routes:
            emit(routes.popleft().result())
        if reader_error is not None:
            raise reader_error
        while writes:
            writes.popleft().result()
    finally:
        for executor in (pool, writer):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
    return counts


def check_counts(
    train_rows: int,
    test_rows: int,
    *,
    k: int,
    strata: list[int] | None,
    need: int,
    stratify_column: str | None,
    test_fraction: float,
) -> None:
    """The split as a whole: data rows at all, k training rows, a test row; with strata (the rows seen of each),
    one stratum at least large enough to send one row to test and keep one (``need`` rows): where none is, the
    split would be a random one whatever the column."""
    if train_rows + test_rows == 0:
        raise DataValidationError("the object has a header but no data rows")
    if strata is not None and max(strata) < need:  # no value can be split: stratifying it means nothing
        raise DataValidationError(
            f"stratifyColumn {stratify_column}: none of its {len(strata):,} values has the "
            f"{need} rows a value needs at testFraction {test_fraction} to send one to test and keep one for "
            f"training (the largest has {max(strata):,}): stratify on a column with fewer, larger groups, or not at all"
        )
    if train_rows < k:
        raise DataValidationError(
            f"only {train_rows + test_rows} data rows: the training share ({train_rows}) must hold at least k={k} rows"
        )
    if test_rows == 0:
        raise DataValidationError(f"only {train_rows + test_rows} data rows: none left for the test channel")
