"""The data step's core: validate CSV bytes and split them into train and test channel bytes, in bounded memory.

The object's blocks of rows (:mod:`~kmeans_pipeline.data.blocks`) are each checked and split one of two ways: the
fast path (:mod:`~kmeans_pipeline.data.fast`) takes every well-formed block, and anything else goes through the
exact path (:mod:`~kmeans_pipeline.data.exact`), which accepts the block or names the line and column that is
wrong. Both paths give rows the same fate: the train/test assignment is decided per window of the object's bytes
by :class:`~kmeans_pipeline.data.splitter.WindowSplitter`, from the window's row count (and strata) only, so it
does not depend on where a reader started or how its blocks fell. Blocks are scanned on a small thread pool while the next ones are read and the finished ones written (see
:func:`split_stream`); peak memory is a constant multiple of ``BLOCK_BYTES``, whatever the input's size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kmeans_pipeline.data.blocks import (
    BLOCK_BYTES,
    RoutedBlock,
    RowBlock,
    block_span,
    by_window,
    header_and_blocks,
)
from kmeans_pipeline.data.exact import ExactRows, read_exact, route_exact
from kmeans_pipeline.data.fast import Scan, route, scan
from kmeans_pipeline.data.header import Layout, parse_header
from kmeans_pipeline.data.splitter import WINDOW_BYTES, WindowSplitter
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
    on_train: Callable[[bytes, Any], None] | None = None,
    workers: int | None = None,
    nonnegative_columns: list[str] | None = None,
    treated_columns: list[str] | None = None,
    window_bytes: int = WINDOW_BYTES,
) -> SplitResult:
    """Validate every row of a CSV object and write its feature rows, header-less, to train or test.

    ``on_train`` sees every piece of the training channel as it is written, in order, with its rows' sample keys
    (the data step uses it to compute the training set's statistics in the same pass). The rows go through
    :func:`split_blocks`, as one range of the data step reads them; the counts are then checked as a whole
    (:func:`check_counts`).
    """
    header, blocks = header_and_blocks(chunks, block_bytes, block_span(window_bytes, block_bytes))
    layout = parse_header(header, feature_columns, stratify_column, nonnegative_columns, treated_columns)
    splitter = WindowSplitter(test_fraction, seed, window_bytes=window_bytes)
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
    splitter: WindowSplitter,
    train: BinaryWriter,
    test: BinaryWriter,
    *,
    on_train: Callable[[bytes, Any], None] | None = None,
    workers: int | None = None,
) -> Counts:
    """Check and split blocks of rows (no header) in order, writing each channel's rows as they are done;
    DataValidationError names the first bad line, once the blocks before it are checked.

    A block's rows may start in several windows of the object (a block is at most one span of whole windows, see
    :func:`~kmeans_pipeline.data.blocks.block_span`): each row is in the window its start is in, and the splitter
    assigns a window's rows once all of them are checked, in one draw. With more
    than one worker (the default: one per core, see default_workers) blocks are scanned and routed on a thread pool
    (numpy releases the GIL) while this thread reads the next ones, and a writer thread writes the finished ones in
    order: reading, parsing and writing overlap. At most ``workers + 1`` blocks are in each stage (and a window's
    blocks wait for its last), so memory stays a constant multiple of the block size. The result does not depend
    on the number of workers: a window's draw depends on its number and rows alone (it is drawn on the pool with
    its routing), and the windows are written in order.
    """
    workers = default_workers() if workers is None else max(1, workers)
    counts = Counts()
    depth = workers + 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="split") if workers > 1 else None
    writer = ThreadPoolExecutor(1, thread_name_prefix="split-write") if workers > 1 else None
    scans: deque[tuple[Any, RowBlock]] = deque()  # (future Scan or None, the block)
    window: list[tuple[RowBlock, Scan | ExactRows]] = []  # the checked blocks of the windows not yet assigned
    last_window = -1  # the window of the last line start in ``window``: no row of a later block is in it or before
    routes: deque[Any] = deque()  # a window's future RoutedBlocks and strata, in order
    writes: deque[Any] = deque()

    def submit(executor: ThreadPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Any:
        return executor.submit(fn, *args) if executor is not None else _Now(fn(*args))

    def write(part: RoutedBlock) -> None:
        if part.train:
            train.write(part.train)
            if on_train is not None:  # a window at a time: the statistics' sums are merged as they always were
                for text, keys in part.train_windows():
                    on_train(text, keys)
        if part.test:
            test.write(part.test)

    def emit(routed: tuple[list[RoutedBlock], list[dict[bytes, int]]]) -> None:
        parts, strata = routed
        for seen in strata:
            splitter.count(seen)
        for part in parts:
            counts.train += part.rows - part.test_rows
            counts.test += part.test_rows
            counts.blank += part.blank
            counts.lines += part.lines
            writes.append(submit(writer, write, part))
            while len(writes) > 2:
                writes.popleft().result()

    def assign_window() -> None:  # every block of its windows is checked: one draw for each window, then route
        routes.append(submit(pool, _route_window, splitter, layout.stratify is not None, list(window)))
        window.clear()

    def checked(block: RowBlock, rows: Scan | ExactRows) -> None:
        nonlocal last_window
        if window and splitter.window_of(block.offset) != last_window:  # it starts in a window after theirs
            assign_window()
        window.append((block, rows))
        last_window = splitter.window_of(block.offset + block.last_line_start)

    def next_scan() -> None:  # the oldest block scanned (or read by the exact path), in order
        future, block = scans.popleft()
        scanned = future.result()
        if scanned is not None:
            checked(block, scanned)
            return
        for piece in by_window(block, splitter.window_bytes):  # the exact path reads a window's rows at a time
            checked(piece, read_exact(piece.data, piece.first_line, layout))

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
                checked(block, read_exact(block.data, block.first_line, layout, overlong=block.overlong))
                continue
            scans.append((submit(pool, scan, block.data, layout), block))
            while len(scans) > depth:
                next_scan()
            while len(routes) > depth:
                emit(routes.popleft().result())
        while scans:
            next_scan()
        if reader_error is not None:
            raise reader_error
        if window:
            assign_window()
        while routes:
            emit(routes.popleft().result())
        while writes:
            writes.popleft().result()
    finally:
        for executor in (pool, writer):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
    return counts


def _route_window(
    splitter: WindowSplitter, stratified: bool, window: list[tuple[RowBlock, Scan | ExactRows]]
) -> tuple[list[RoutedBlock], list[dict[bytes, int]]]:
    """Blocks holding every row of their windows (checked) split by one draw for each window's rows, and each
    window's rows of each stratum. A window's draw depends on its number and rows alone, so windows are drawn on
    the pool, several at once."""
    sizes = [len(rows.text) if isinstance(rows, ExactRows) else rows.rows for _, rows in window]
    windows = [
        (block.offset + rows.row_starts) // splitter.window_bytes
        if isinstance(rows, Scan) and rows.row_starts is not None
        else np.full(size, splitter.window_of(block.offset), dtype=np.int64)
        for (block, rows), size in zip(window, sizes)
    ]
    strata = None
    if stratified:
        keys = [
            np.array(rows.strata, dtype=f"S{max(map(len, rows.strata), default=1)}")
            if isinstance(rows, ExactRows)
            else rows.strata
            for _, rows in window
        ]
        present = [k for k, n in zip(keys, sizes) if n and k is not None]
        strata = np.concatenate(present) if present else None
    is_test, sample_keys, seen = _draw(splitter, np.concatenate(windows), strata)
    parts, row, key = [], 0, 0
    for (block, rows), size, rows_windows in zip(window, sizes, windows):
        mask = is_test[row : row + size]
        trained = size - int(np.count_nonzero(mask))
        block_keys = sample_keys[key : key + trained]
        row, key = row + size, key + trained
        if isinstance(rows, ExactRows):
            parts.append(route_exact(rows, block, mask, block_keys))
            continue
        part = route(rows, mask, block_keys)
        if size and rows_windows[0] != rows_windows[-1]:
            kept = ~mask
            trained_windows = rows_windows[kept]
            starts = np.flatnonzero(trained_windows[1:] != trained_windows[:-1]) + 1
            if len(starts):
                ends = np.cumsum(rows.row_lengths[kept])
                part.train_cuts = [(int(ends[at - 1]), int(at)) for at in starts]
        parts.append(part)
    return parts, seen


def _draw(
    splitter: WindowSplitter, windows: np.ndarray, strata: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, list[dict[bytes, int]]]:
    """The draws of the rows in the windows ``windows`` (each row's, in order): the test mask, the training rows'
    keys in row order, each window's rows of each stratum."""
    cuts = [0, *(np.flatnonzero(windows[1:] != windows[:-1]) + 1).tolist(), len(windows)]
    masks, keys, seen = [np.zeros(0, dtype=bool)], [np.zeros(0)], []
    for begin, end in zip(cuts, cuts[1:]):
        if end > begin:
            drawn = splitter.assign(int(windows[begin]), end - begin, None if strata is None else strata[begin:end])
            masks.append(drawn[0])
            keys.append(drawn[1])
            seen.append(drawn[2])
    return np.concatenate(masks), np.concatenate(keys), seen


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
