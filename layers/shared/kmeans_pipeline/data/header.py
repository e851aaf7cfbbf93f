"""The CSV's header: which columns are features, which one stratifies the split, which must not be negative."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from kmeans_pipeline.errors import DataValidationError


@dataclass(frozen=True)
class Layout:
    header: list[str]
    features: list[int]  # indexes of the feature columns, in channel order
    stratify: int | None
    nonnegative: tuple[int, ...] = ()  # feature columns whose values must not be negative (log treatments)

    @property
    def width(self) -> int:
        return len(self.header)

    @property
    def names(self) -> list[str]:
        return [self.header[i] for i in self.features]


def parse_header(
    raw: bytes,
    feature_columns: list[str] | None,
    stratify_column: str | None,
    nonnegative_columns: list[str] | None = None,
    treated_columns: list[str] | None = None,
) -> Layout:
    """The header's layout; ``treated_columns`` (the run's treatments) must all be feature columns."""
    header = _names(raw)
    wanted = feature_columns or header
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataValidationError(f"line 1: feature column(s) {', '.join(missing)} not in the header {header}")
    stratify = None
    if stratify_column is not None:
        if stratify_column not in header:
            raise DataValidationError(f"line 1: stratify column {stratify_column} not in the header {header}")
        stratify = header.index(stratify_column)
    unknown = [name for name in treated_columns or [] if name not in wanted]
    if unknown:
        where = "featureColumns" if feature_columns else "the header"
        raise DataValidationError(
            f"line 1: treatments names {', '.join(unknown)}, which {where} does not list as a feature column "
            f"(the feature columns: {', '.join(wanted)})"
        )
    nonnegative = tuple(header.index(name) for name in nonnegative_columns or [] if name in wanted)
    return Layout(header, [header.index(name) for name in wanted], stratify, nonnegative)


def _names(raw: bytes) -> list[str]:
    """The header line's column names: one line of comma-separated names, each once, none empty."""
    try:
        line = raw.decode("utf-8").removeprefix("\ufeff").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"line 1: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if "\r" in line:
        raise DataValidationError(
            "line 1: the header holds a carriage return (CR): the file uses CR line endings (old Mac style); "
            "save it with LF or CRLF line endings"
        )
    if not line.strip():
        raise DataValidationError("line 1: the header is blank")
    try:
        header = [name.strip() for name in next(csv.reader([line], strict=True))]
    except csv.Error as exc:
        raise DataValidationError(
            f"line 1: the header cannot be read as CSV ({exc}): it must be one line of comma-separated names"
        ) from exc
    if len(header) == 1 and ";" in header[0] or "\t" in line:
        raise DataValidationError(
            f"line 1: the header {line[:80]!r} is not comma-separated (found ';' or a tab); save the file as CSV"
        )
    if any(not name for name in header):
        raise DataValidationError(f"line 1: the header has an empty column name: {header}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataValidationError(f"line 1: the header names {', '.join(duplicates)} more than once")
    return header
