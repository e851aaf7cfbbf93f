"""A reference reader of what a CSV may hold (docs/usage.md, "What a CSV may hold"), built on Python's strict
``csv`` module over the whole text and on nothing of the data step: no blocks, no fast path, no quote tracking.
The differential fuzz (tests/unit/test_csv_fuzz.py) holds the data step's readers to it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
FLOAT32_LIMIT = 2.0**128 - 2.0**103  # float32 rounds anything from here up to infinity


@dataclass
class Reference:
    rows: list[tuple[float, ...]] = field(default_factory=list)  # feature values, in feature order
    lines: list[int] = field(default_factory=list)  # the line each row starts on
    strata: list[str] = field(default_factory=list)
    blank: int = 0
    error: tuple[int, str | None] | None = None  # (line, column) of the first problem


def read(
    data: bytes, features: list[str] | None = None, stratify: str | None = None, nonnegative: tuple[str, ...] = ()
) -> Reference:
    """Every row of a UTF-8 CSV whose header is well formed, or the first problem's line and column."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    if not text.endswith("\n"):
        text += "\n"
    physical = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    header = [name.strip() for name in next(reader)]
    wanted = [header.index(name) for name in features or header]
    out = Reference()
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return out
        except csv.Error as exc:
            out.error = _csv_error(str(exc), text, start, reader.line_num, header)
            return out
        if not row or (len(row) == 1 and not row[0].strip() and '"' not in physical[start - 1]):
            out.blank += 1
            continue
        if len(row) != len(header):
            out.error = (start, None)
            return out
        values = _values(row, wanted, header, nonnegative)
        if isinstance(values, str):
            out.error = (start, values)
            return out
        out.rows.append(tuple(values[i] for i in wanted))
        out.lines.append(start)
        if stratify is not None:
            out.strata.append(row[header.index(stratify)].strip())


def _values(row: list[str], wanted: list[int], header: list[str], nonnegative: tuple[str, ...]) -> dict | str:
    """The row's feature values by column index, or the name of its first bad column, left to right."""
    values = {}
    for i in sorted(wanted):
        token = row[i].strip()
        if not NUMBER.fullmatch(token) or not abs(float(token)) < FLOAT32_LIMIT:
            return header[i]
        values[i] = float(token)
        if header[i] in nonnegative and values[i] < 0:
            return header[i]
    return values


def _csv_error(message: str, text: str, start: int, line_num: int, header: list[str]) -> tuple[int, str | None]:
    if "unexpected end of data" not in message:
        return line_num, None  # the line the reader was on
    # A quoted field runs to the end: closing it there makes the record whole, and its last field, the one left
    # open, says how many lines it spans (the text ends with a line feed, inside that field).
    offset = sum(len(line) + 1 for line in text.split("\n")[: start - 1])
    fields = next(csv.reader(io.StringIO(text[offset:] + '"\n', newline="\n"), strict=True))
    opened = text.count("\n") - fields[-1].count("\n") + 1
    return opened, header[len(fields) - 1] if len(fields) <= len(header) else None
