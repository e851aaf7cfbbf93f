"""Experiment (issue 11), not product code: library CSV readers as the core of the data step's fast path.

    pip install pyarrow arro3-core arro3-io        # into .venv; polars_blocks wants Polars 1.20 (see below)
    BENCH_PYTHON_POLARS_BLOCKS=/path/to/venv-with-polars-1.20/bin/python \
        python tools/bench.py --only copy,core,polars,pyarrow,arro3,polars_blocks --files text --skip-history

Three prototypes of ``split_stream``'s job (validate every feature value, drop the other columns, seeded
train/test split, channels written as CSV), each run by the bench in a fresh interpreter like every tool:

pyarrow        ``pyarrow.csv.open_csv``, the streaming reader (C++, multi-threaded, GIL released), with
               ``include_columns`` = the features and every feature read as a *string* column (strict: no null
               values, UTF-8 checked). The value buffers are checked with the data step's own numpy number-syntax
               pass (``split._numbers_ok``) and joined into channel rows (``split._gather``), so the channels
               carry the source's text as ``split_stream``'s fast path does; ``fast.route`` splits each batch.
arro3          ``arro3.io.read_csv`` (arrow-rs, Rust) over the whole stream with the features typed Float64 and
               every other column Utf8; per batch a non-null and finite check, the splitter's mask, ``take`` and
               ``arro3.io.write_csv`` (the channels then carry arrow-rs's float formatting). It holds the GIL.
polars_blocks  ``polars.read_csv`` on the data step's own blocks of whole lines (``split.line_blocks``), features
               typed Float64 and projected, then a non-null and finite check, the mask and two ``write_csv``:
               Polars's parser with memory bounded by the block size, unlike the anchor's lazy scan.

On anything the reader or the checks refuse, each hands the whole input to ``split_stream`` (the exact path
names the first bad line and column): enough for the bench's "validates" column, not for production, where
the channels already written would have to be abandoned first. None handles strata or non-negative columns, and
the lenient library parsers accept some quoting that the data step's strict reading refuses. Each was checked
to write the same rows as ``split_stream`` on the three 2 M-row bench files. Findings: docs/benchmarks.md, "Libraries studied for the fast path".
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np

from kmeans_pipeline.data.fast import _COMMA, _NL, _PAD, Scan, _classes, _gather, _numbers_ok, route
from kmeans_pipeline.data.split import SplitResult, split_stream
from kmeans_pipeline.data.splitter import StratifiedSplitter


class _Refused(Exception):
    """The prototype's reader or checks refused the input: the exact path decides."""


def _string_column(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(value bytes, offsets) of a pyarrow string array, without copying."""
    buffers = column.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.empty(0, np.uint8)
    return data, offsets


def _pyarrow_batch(batch: Any, features: list[str]) -> Scan:
    """A record batch of string feature columns as the rows the channels carry (source text), checked."""
    rows = batch.num_rows
    datas, starts, lengths, base = [], [], [], 0
    for name in features:
        data, offsets = _string_column(batch.column(name))
        datas.append(data)
        starts.append(offsets[:-1].astype(np.int64) + base)
        lengths.append(np.diff(offsets).astype(np.int64))
        base += len(data)
    field_lengths = np.stack(lengths, axis=1)
    if rows and (field_lengths.min() == 0 or field_lengths.max() > 100):
        raise _Refused
    out = _gather(np.concatenate([*datas, np.zeros(1, np.uint8)]), np.stack(starts, axis=1), field_lengths)
    c = _classes(out)
    inner = c[_PAD:-_PAD]
    if len(out) and int(inner.max()) > _NL:
        raise _Refused
    delimiters = np.flatnonzero(inner >= _COMMA)
    if len(delimiters) != rows * len(features) or not _numbers_ok(c, delimiters):
        raise _Refused
    return Scan(rows, 0, rows, out, field_lengths.sum(1) + len(features), None)


def split_pyarrow(
    source: Any,
    train: Any,
    test: Any,
    *,
    feature_columns: list[str],
    test_fraction: float = 0.2,
    seed: int = 42,
    block_bytes: int = 1 << 20,
    use_threads: bool = True,
) -> SplitResult:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    splitter = StratifiedSplitter(test_fraction, seed)
    counts = [0, 0]
    reader = pcsv.open_csv(
        source,
        read_options=pcsv.ReadOptions(block_size=block_bytes, use_threads=use_threads),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in feature_columns},
            include_columns=feature_columns,
            include_missing_columns=False,
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        ),
    )
    try:
        for batch in reader:
            scan = _pyarrow_batch(batch, feature_columns)
            part = route(scan, splitter.assign(scan.rows))
            train.write(part.train)
            test.write(part.test)
            counts[0] += part.rows - part.test_rows
            counts[1] += part.test_rows
    except pa.ArrowInvalid as exc:
        raise _Refused from exc
    return SplitResult(feature_columns, counts[0], counts[1], 0)


def split_arro3(
    source: Any,
    train: Any,
    test: Any,
    *,
    feature_columns: list[str],
    header: list[str],
    test_fraction: float = 0.2,
    seed: int = 42,
    batch_rows: int = 65_536,
) -> SplitResult:
    import arro3.core as ac
    import arro3.io as aio

    schema = ac.Schema(
        [
            ac.Field(name, ac.DataType.float64() if name in feature_columns else ac.DataType.string(), nullable=True)
            for name in header
        ]
    )
    splitter = StratifiedSplitter(test_fraction, seed)
    counts = [0, 0]
    try:
        for batch in aio.read_csv(source, schema, has_header=True, batch_size=batch_rows):
            for name in feature_columns:
                column = batch.column(name)
                if column.null_count or not np.isfinite(np.asarray(column)).all():
                    raise _Refused
            is_test = splitter.assign(batch.num_rows)
            chosen = batch.select(feature_columns)
            for mask, sink in ((~is_test, train), (is_test, test)):
                out = io.BytesIO()
                aio.write_csv(chosen.take(ac.Array(np.flatnonzero(mask).astype(np.uint32))), out, header=False)
                sink.write(out.getvalue())
            counts[1] += int(is_test.sum())
            counts[0] += batch.num_rows - int(is_test.sum())
    except Exception as exc:  # arro3 raises plain exceptions (ValueError, Exception) for malformed CSV
        if isinstance(exc, _Refused):
            raise
        raise _Refused from exc
    return SplitResult(feature_columns, counts[0], counts[1], 0)


def split_polars_blocks(
    chunks: Any,
    train: Any,
    test: Any,
    *,
    feature_columns: list[str],
    test_fraction: float = 0.2,
    seed: int = 42,
    block_bytes: int = 4 << 20,
) -> SplitResult:
    """Polars's CSV reader (Rust, multi-threaded, GIL released) on the data step's own blocks of whole lines:
    ``read_csv`` of each block with the features typed Float64, only they projected; a non-null and finite check;
    the splitter's mask; two ``write_csv``. Memory stays bounded by the block size, unlike a lazy scan."""
    import polars as pl

    from kmeans_pipeline.data.blocks import line_blocks

    blocks = line_blocks(chunks, block_bytes)
    first = next(blocks)
    header_end = first.index(b"\n") + 1
    header = first[:header_end].decode("utf-8").removeprefix("\ufeff").strip().split(",")
    schema = {name: pl.Float64 if name in feature_columns else pl.String for name in header}
    splitter = StratifiedSplitter(test_fraction, seed)
    counts = [0, 0]
    for block in itertools.chain([first[header_end:]], blocks):
        if not block:
            continue
        if block.count(b'"') % 2:
            raise _Refused  # a quoted field across blocks: not handled by the prototype
        try:
            frame = pl.read_csv(
                block,
                has_header=False,
                schema=schema,
                columns=[header.index(name) for name in feature_columns],
                rechunk=False,
                raise_if_empty=False,
            )
        except Exception as exc:  # polars.exceptions.ComputeError and friends
            raise _Refused from exc
        if frame.null_count().sum_horizontal().item():
            raise _Refused
        if not all(frame.select(pl.all().is_finite().all()).row(0)):
            raise _Refused
        is_test = splitter.assign(frame.height)
        for mask, sink in ((~is_test, train), (is_test, test)):
            out = io.BytesIO()
            frame.filter(pl.Series(mask)).write_csv(out, include_header=False)
            sink.write(out.getvalue())
        tested = int(is_test.sum())
        counts[0] += frame.height - tested
        counts[1] += tested
    return SplitResult(feature_columns, counts[0], counts[1], 0)


def run(tool: str, path: str, train_path: str, test_path: str, features: list[str]) -> SplitResult:
    """The bench's child: one prototype over a local file; on refusal, split_stream over the whole file."""
    with open(path, "rb") as src:
        header = src.readline().decode("utf-8").removeprefix("\ufeff").strip().split(",")
    try:
        with open(path, "rb") as src, open(train_path, "wb") as train, open(test_path, "wb") as test:
            if tool == "pyarrow":
                return split_pyarrow(src, train, test, feature_columns=features)
            if tool == "polars_blocks":
                chunks = iter(lambda: src.read(8 << 20), b"")
                return split_polars_blocks(chunks, train, test, feature_columns=features)
            return split_arro3(src, train, test, feature_columns=features, header=header)
    except _Refused:
        pass
    with open(path, "rb") as src, open(train_path, "wb") as train, open(test_path, "wb") as test:
        return split_stream(iter(lambda: src.read(8 << 20), b""), train, test, feature_columns=features)
