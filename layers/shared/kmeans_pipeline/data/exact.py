"""The exact path: a block the fast path did not take, read row by row with the ``csv`` module. It either
accepts the block (writing each value as Python's ``repr`` of the float) or raises a DataValidationError naming
the line and the column (spaces around a number, a value that is not a number, a ragged row, a stray quote, a
bare CR, bytes that are not UTF-8)."""

from __future__ import annotations

import csv
import io
import math
import re

import numpy as np

from kmeans_pipeline.data.blocks import MAX_LINE_BYTES, RoutedBlock
from kmeans_pipeline.data.header import Layout
from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.errors import DataValidationError

# What SageMaker's CSV reader and every spreadsheet agree is a number (float() also takes "1_000" and "１").
# A line may hold up to MAX_LINE_BYTES, so may a field (the csv module's default stops at 128 KiB).
csv.field_size_limit(MAX_LINE_BYTES + 1)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = {"nan", "inf", "infinity"}


def parse_float(text: str, line_number: int, column: str) -> float:
    token = text.strip()
    if token.lower().lstrip("+-") in _NOT_FINITE:
        raise DataValidationError(f"line {line_number}, column {column}: {token!r} is not a finite number")
    if not _NUMBER.fullmatch(token):
        raise DataValidationError(f"line {line_number}, column {column}: {token[:40]!r} is not a number")
    value = float(token)
    if not math.isfinite(value):
        raise DataValidationError(f"line {line_number}, column {column}: {token[:40]!r} is too large for a number")
    return value


def split_exact(block: bytes, first_line: int, layout: Layout, splitter: StratifiedSplitter) -> RoutedBlock:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = block.rfind(b"\n", 0, exc.start) + 1
        line = first_line + block.count(b"\n", 0, exc.start)
        raise DataValidationError(
            f"line {line}: not UTF-8 text ({exc.reason} at byte {exc.start - line_start})"
        ) from exc
    lines = text.count("\n")
    # The csv module sees the line endings, so a quoted field keeps its newline (and is then no number), and
    # strict mode refuses text after a closing quote ("1"2) instead of gluing it on.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[str] = []
    strata: list[bytes] = []
    blank = 0
    try:
        for row in reader:
            line_number = first_line + reader.line_num - 1  # a quoted field may span lines: the row's last line
            if not row or all(not field.strip() for field in row):
                blank += 1
                continue
            if len(row) != layout.width:
                raise DataValidationError(f"line {line_number}: {len(row)} fields, but the header has {layout.width}")
            values = [parse_float(row[i], line_number, layout.header[i]) for i in layout.features]
            for i in layout.nonnegative:
                if parse_float(row[i], line_number, layout.header[i]) < 0:
                    raise DataValidationError(
                        f"line {line_number}, column {layout.header[i]}: {row[i].strip()[:40]!r} is negative, and "
                        "a log treatment needs values >= 0 (treat the column as numeric)"
                    )
            out.append(",".join(map(repr, values)) + "\n")
            if layout.stratify is not None:
                strata.append(row[layout.stratify].strip().encode())
    except csv.Error as exc:
        raise DataValidationError(f"line {first_line + reader.line_num - 1}: {exc}") from exc
    keys = np.array(strata, dtype=bytes) if layout.stratify is not None and out else None
    is_test = splitter.assign(len(out), keys).tolist()
    train = "".join(row for row, test in zip(out, is_test) if not test)
    test = "".join(row for row, test in zip(out, is_test) if test)
    return RoutedBlock(len(out), sum(is_test), blank, lines, train.encode(), test.encode())
