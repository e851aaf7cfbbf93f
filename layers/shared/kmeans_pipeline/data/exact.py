"""The exact path: a block the fast path did not take, read row by row with the strict ``csv`` module. It either
accepts the block (writing each value as Python's ``repr`` of the float) or raises a DataValidationError naming
the line and the column of the first thing wrong in it (a value that is not a number or is out of float32's
range, a ragged row, a quote out of place or never closed, a bare CR, bytes that are not UTF-8).

A row is named by the line it starts on (a quoted field may carry it over several lines); a quoted field that is
never closed, by the line where its quote opened. Within a row the columns are checked left to right.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from kmeans_pipeline.data.blocks import MAX_LINE_BYTES, MAX_RECORD_BYTES, RoutedBlock, RowBlock, quote_states
from kmeans_pipeline.data.channels import FLOAT32_LIMIT, FLOAT32_MAX
from kmeans_pipeline.data.header import Layout
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
    if not abs(value) < FLOAT32_LIMIT:
        raise DataValidationError(
            f"line {line_number}, column {column}: {token[:40]!r} is beyond float32's range (magnitudes up to "
            f"{FLOAT32_MAX}), the numbers SageMaker reads"
        )
    return value


@dataclass
class ExactRows:
    """A block's data rows as the exact path reads them: channel text, strata, each row's first line."""

    text: list[str] = field(default_factory=list)
    strata: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    blank: int = 0


def read_exact(block: bytes, first_line: int, layout: Layout, *, overlong: bool = False) -> ExactRows:
    """Every data row of a block, checked; DataValidationError names the first problem's line (and column)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = block.rfind(b"\n", 0, exc.start) + 1
        line = first_line + block.count(b"\n", 0, exc.start)
        # The rows before the bad byte's line come first (one may go on over it: then the bytes are the problem).
        _read(block[:line_start].decode("utf-8"), block[:line_start], first_line, layout, complete=False)
        raise DataValidationError(
            f"line {line}: not UTF-8 text ({exc.reason} at byte {exc.start - line_start})"
        ) from exc
    return _read(text, block, first_line, layout, overlong=overlong)


def route_exact(rows: ExactRows, block: RowBlock, is_test: np.ndarray, keys: np.ndarray | None = None) -> RoutedBlock:
    """A block's rows as the exact path read them, sent to train or test by the splitter's mask."""
    tested = is_test.tolist()
    train = "".join(row for row, test in zip(rows.text, tested) if not test)
    test = "".join(row for row, test in zip(rows.text, tested) if test)
    return RoutedBlock(
        len(rows.text), sum(tested), rows.blank, block.data.count(b"\n"), train.encode(), test.encode(), keys
    )


def _read(
    text: str, block: bytes, first_line: int, layout: Layout, *, overlong: bool = False, complete: bool = True
) -> ExactRows:
    found = ExactRows()
    checked = sorted(layout.features)  # left to right: the first bad field of a row is the one named
    nonnegative = set(layout.nonnegative)
    lines: list[str] | None = None
    for start, row in _records(text, block, first_line, layout, overlong=overlong, complete=complete):
        if not row or (len(row) == 1 and not row[0].strip()):
            lines = text.split("\n") if lines is None else lines
            if '"' not in lines[start - first_line]:  # an empty or all-space line; a quoted "" is a value
                found.blank += 1
                continue
        if len(row) != layout.width:
            raise DataValidationError(f"line {start}: {len(row)} fields, but the header has {layout.width}")
        values = {}
        for i in checked:
            value = values[i] = parse_float(row[i], start, layout.header[i])
            if value < 0 and i in nonnegative:
                raise DataValidationError(
                    f"line {start}, column {layout.header[i]}: {row[i].strip()[:40]!r} is negative, and "
                    "a log treatment needs values >= 0 (treat the column as numeric)"
                )
        found.text.append(",".join(repr(values[i]) for i in layout.features) + "\n")
        found.lines.append(start)
        if layout.stratify is not None:
            found.strata.append(row[layout.stratify].strip().encode())
    return found


def _records(
    text: str, block: bytes, first_line: int, layout: Layout, *, overlong: bool, complete: bool
) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its fields) for every record of the text, blank ones included."""
    # Lines end at line feeds only: a CR is part of a line ending just before one (CRLF), or inside quotes.
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    while True:
        start = first_line + reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = str(exc)
            if "unexpected end of data" in message and not complete:
                return  # the text was cut inside a record: what follows it decides
            raise _structure_error(message, block, first_line, reader.line_num, start, layout, overlong) from None
        yield start, row


def _structure_error(
    message: str, block: bytes, first_line: int, line_num: int, start: int, layout: Layout, overlong: bool
) -> DataValidationError:
    """What a csv.Error means, named by its line (by the line where the quote opened, for a field never closed)."""
    line = first_line + line_num - 1
    if "unexpected end of data" in message or "field larger than field limit" in message:
        newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
        end = int(newlines[line_num - 1]) if "field larger" in message else len(block)
        opened = quote_states(block).open_at(end)
        if opened is not None:
            line = first_line + int(np.count_nonzero(newlines < opened))
            record = int(newlines[start - first_line - 1]) + 1 if start > first_line else 0
            where = f"line {line}{_column(block[record:opened], layout)}"
            if "field larger" in message:
                return DataValidationError(
                    f"{where}: a quoted field opens here and runs on for more than {MAX_LINE_BYTES:,} bytes: "
                    "is its closing quote missing?"
                )
            if overlong:
                return DataValidationError(
                    f"{where}: a quoted field opens here and its row runs on for more than {MAX_RECORD_BYTES:,} "
                    "bytes: is its closing quote missing?"
                )
            return DataValidationError(
                f"{where}: a quoted field opens here and is never closed (a closing quote is missing, or a quote "
                'inside the field is not doubled: "")'
            )
    if "expected after" in message:
        return DataValidationError(
            f"line {line}: a closing quote must be followed by a comma or the end of the line (a quote inside a "
            'quoted field is written twice: "")'
        )
    if "new-line character seen in unquoted field" in message:
        return DataValidationError(
            f"line {line}: a carriage return (CR) inside a line, outside quotes: the file uses CR line endings "
            "here; save it with LF or CRLF line endings"
        )
    return DataValidationError(f"line {line}: {message}")


def _column(prefix: bytes, layout: Layout) -> str:
    """ ", column NAME" for the field that starts after ``prefix`` (the record's text before it), if it has one."""
    index = len(next(csv.reader(io.StringIO(prefix.decode("utf-8") + "\n", newline="\n")))) - 1 if prefix else 0
    return f", column {layout.header[index]}" if index < layout.width else ""
