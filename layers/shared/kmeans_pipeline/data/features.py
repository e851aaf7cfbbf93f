"""Reading the feature rows back: the demo scores every record the way the data step read it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import numpy as np

from kmeans_pipeline.data.blocks import BLOCK_BYTES, header_and_blocks
from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.exact import split_exact
from kmeans_pipeline.data.fast import split_fast
from kmeans_pipeline.data.header import parse_header
from kmeans_pipeline.data.splitter import StratifiedSplitter


def read_feature_rows(
    chunks: Iterable[bytes], feature_columns: list[str] | None = None, *, block_bytes: int = BLOCK_BYTES
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every data row of a CSV object, read by the data step's own rules (header, BOM, quoting, blank lines,
    columns by name): (feature names, float64 matrix of the feature columns, each row's 1-based line number).

    The same bytes give the same values, in source order, as the rows ``split_stream`` sends to its channels.
    """
    header, blocks = header_and_blocks(chunks, block_bytes)
    layout = parse_header(header, feature_columns, None)
    keep_all = StratifiedSplitter(0.0, 0)  # no test share: every row lands in "train", in source order
    values: list[np.ndarray] = []
    line_numbers: list[np.ndarray] = []
    for block in blocks:
        part = None if block.unbalanced else split_fast(block.data, layout, keep_all)
        if part is None:
            part = split_exact(block.data, block.first_line, layout, keep_all)
        values.append(parse_rows(part.train, len(layout.features)))
        if part.rows == part.lines:  # no blank line and no row over several lines: one row a line
            line_numbers.append(np.arange(block.first_line, block.first_line + part.lines, dtype=np.int64))
        else:
            line_numbers.append(_row_lines(block.data, block.first_line))
    width = len(layout.features)
    matrix = np.concatenate(values) if values else np.empty((0, width))
    numbers = np.concatenate(line_numbers) if line_numbers else np.empty(0, dtype=np.int64)
    if len(numbers) != len(matrix):  # the two walks over the block disagree: a bug, never bad input
        raise AssertionError(f"{len(matrix)} rows but {len(numbers)} line numbers")
    return layout.names, matrix, numbers


def _row_lines(block: bytes, first_line: int) -> np.ndarray:
    """The line number of each data row of a block, counted as ``split_exact`` counts them (a row's last line)."""
    reader = csv.reader(io.StringIO(block.decode("utf-8"), newline=""), strict=True)
    found = [first_line + reader.line_num - 1 for row in reader if row and any(field.strip() for field in row)]
    return np.array(found, dtype=np.int64)
