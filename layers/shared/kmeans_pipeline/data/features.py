"""Reading the feature rows back: the demo scores every record the way the data step read it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from kmeans_pipeline.data.blocks import BLOCK_BYTES, RowBlock, header_and_blocks
from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.exact import read_exact
from kmeans_pipeline.data.fast import split_fast
from kmeans_pipeline.data.header import Layout, parse_header
from kmeans_pipeline.data.splitter import StratifiedSplitter


def read_feature_rows(
    chunks: Iterable[bytes], feature_columns: list[str] | None = None, *, block_bytes: int = BLOCK_BYTES
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every data row of a CSV object, read by the data step's own rules (header, BOM, quoting, blank lines,
    columns by name): (feature names, float64 matrix of the feature columns, the line each row starts on).

    The same bytes give the same values, in source order, as the rows ``split_stream`` sends to its channels.
    """
    names, blocks = feature_blocks(chunks, feature_columns, block_bytes=block_bytes)
    values: list[np.ndarray] = []
    line_numbers: list[np.ndarray] = []
    for X, lines in blocks:
        values.append(X)
        line_numbers.append(lines)
    matrix = np.concatenate(values) if values else np.empty((0, len(names)))
    numbers = np.concatenate(line_numbers) if line_numbers else np.empty(0, dtype=np.int64)
    return names, matrix, numbers


def feature_blocks(
    chunks: Iterable[bytes], feature_columns: list[str] | None = None, *, block_bytes: int = BLOCK_BYTES
) -> tuple[list[str], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """(feature names, the data rows a block at a time: float64 matrix of the feature columns and the line each row
    starts on), in bounded memory."""
    header, blocks = header_and_blocks(chunks, block_bytes)
    layout = parse_header(header, feature_columns, None)
    return layout.names, row_blocks_as_features(blocks, layout)


def row_blocks_as_features(blocks: Iterable[RowBlock], layout: Layout) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of rows as (float64 matrix of the feature columns, the line each row starts on)."""
    keep_all = StratifiedSplitter(0.0, 0)  # no test share: every row lands in "train", in source order
    width = len(layout.features)
    for block in blocks:
        part = None if block.unbalanced else split_fast(block.data, layout, keep_all)
        if part is not None and part.rows == part.lines:  # one row a line
            lines = np.arange(block.first_line, block.first_line + part.lines, dtype=np.int64)
            yield parse_rows(part.train, width), lines
            continue
        exact = read_exact(block.data, block.first_line, layout, overlong=block.overlong)
        yield parse_rows("".join(exact.text).encode(), width), np.array(exact.lines, dtype=np.int64)
