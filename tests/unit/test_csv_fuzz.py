"""The differential fuzz: on generated CSVs (text fields with stray quotes and inch marks, quoted line breaks, CRLF,
a BOM, blank lines, rows of only commas, values out of float32's range), cut into blocks anywhere, the data step's
readers give the rows, values and lines that a reference reader built on Python's strict ``csv`` module gives, or
fail naming the same line and column as its first problem (testkit/csv_reference.py)."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_pipeline.data.features import read_feature_rows
from kmeans_pipeline.data.split import split_stream
from kmeans_pipeline.errors import DataValidationError
from testkit import csv_reference

NUMBERS = ["0", "7", "-3", "+4", "12.5", "-0.25", ".5", "5.", "1e5", "2E-3", "1.5e+07", "007", " 3", "1 ", "1e38"]
ODD_NUMBERS = ["", "abc", "1.2.3", "nan", "-inf", "1e39", "-3.5e38", "3.4028235e38", "1e-50", "1,5", "x1"]
TEXTS = [
    "",
    "Acme",
    "a b",
    '12" pipe',  # an inch mark inside an unquoted field: text
    "5'10\"",
    'a"b"c',
    'x""y',
    '"Acme, Inc."',
    '"Joe""s, LLC"',
    '""',
    '"two\nlines"',
    '"two\r\nlines, and ""more"""',
    '"three\n\nlines"',
    '"\n"',
    '"quoted"',
    ' "space first"',
    "caf\u00e9",
]
BROKEN_TEXTS = ['"open', '"a"b', '"a" ', "x\ry", '"a"\rb', '"unclosed\n']
NAMES = {"numeric": ["n1", "n2", "n3"], "text": ["id", "note"]}


@st.composite
def csv_cases(draw):
    """A file of well-formed rows (blank lines among them), then perhaps one flaw anywhere: a value that is no
    number or out of range, a quote out of place or never closed, a bare CR, a row of only commas or ragged."""
    numeric = draw(st.lists(st.sampled_from(NAMES["numeric"]), min_size=1, max_size=3, unique=True))
    text = draw(st.lists(st.sampled_from(NAMES["text"]), min_size=0, max_size=2, unique=True))
    header = draw(st.permutations(numeric + text))
    width = len(header)
    number = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(NUMBERS).map(lambda v: f'"{v}"'))
    cells = [number if name in numeric else st.sampled_from(TEXTS) for name in header]
    row = st.tuples(*cells).map(list)
    blank = st.sampled_from([[""], ["  "], ["\r"]])
    size = draw(st.integers(0, 40))
    rows = draw(st.lists(st.one_of(row, row, row, row, row, blank), min_size=size, max_size=size))
    flaw = draw(st.integers(0, 5))
    if rows and flaw < 3:  # a flawed field in one row
        at = draw(st.integers(0, len(rows) - 1))
        if len(rows[at]) == width:
            column = draw(st.integers(0, width - 1))
            odd = ODD_NUMBERS if header[column] in numeric else BROKEN_TEXTS
            rows[at][column] = draw(st.sampled_from(odd))
    elif flaw == 3:  # a row of only commas, or a ragged one
        odd_row = st.sampled_from([[""] * width, [""] * (width + 1), ["", "", "", ""], ["7"], ["1"] * (width + 1)])
        rows.insert(draw(st.integers(0, len(rows))), draw(odd_row))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    final = draw(st.sampled_from([newline, ""]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    features = draw(st.permutations(numeric))[: draw(st.integers(1, len(numeric)))]
    stratify = draw(st.sampled_from([None, *header]))
    nonnegative = tuple(draw(st.lists(st.sampled_from(features), max_size=1)))
    lines = [",".join(r) for r in rows]
    data = (bom + ",".join(header) + newline + newline.join(lines) + final).encode()
    return data, features, stratify, nonnegative


WHERE = re.compile(r"^line (\d+)(?:, column ([^:]+))?:")


def where(message: str) -> tuple[int, str | None]:
    match = WHERE.match(message)
    assert match, f"the message names no line: {message}"
    return int(match.group(1)), match.group(2)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def check(case, block_bytes: int, chunk: int) -> None:
    data, features, stratify, nonnegative = case
    expected = csv_reference.read(data, features, stratify, nonnegative)

    # The demo's reader: every row in order, with its values and the line it starts on.
    if not nonnegative:
        try:
            names, X, lines = read_feature_rows(pieces(data, chunk), features, block_bytes=block_bytes)
        except DataValidationError as exc:
            assert expected.error == where(str(exc)), str(exc)
        else:
            assert expected.error is None, f"accepted, but the reference stops at {expected.error}"
            assert [tuple(r) for r in X.tolist()] == expected.rows
            assert lines.tolist() == expected.lines

    # The data step's split: the same rows (in train or test), the same blank lines, or the same first problem.
    train, test = io.BytesIO(), io.BytesIO()
    try:
        result = split_stream(
            pieces(data, chunk),
            train,
            test,
            feature_columns=features,
            stratify_column=stratify,
            nonnegative_columns=list(nonnegative),
            test_fraction=0.5,
            k=1,
            block_bytes=block_bytes,
        )
    except DataValidationError as exc:
        message = str(exc)
        if expected.error is None:  # rows all fine, but too few to split (or strata too small)
            assert message.startswith(("only ", "stratifyColumn ", "the object has a header but no data rows"))
            assert len(expected.rows) < 4 or stratify is not None, message
        else:
            assert expected.error == where(message), message
        return
    assert expected.error is None, f"accepted, but the reference stops at {expected.error}"
    channel = [tuple(float(v) for v in line.split(b",")) for line in (train.getvalue() + test.getvalue()).splitlines()]
    assert sorted(channel) == sorted(expected.rows)
    assert result.blank_lines == expected.blank


FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=300, **FUZZ)
@given(case=csv_cases(), block_bytes=st.integers(8, 160), chunk=st.integers(1, 64))
def test_the_data_step_reads_what_the_strict_csv_reader_reads_at_any_block_boundary(case, block_bytes, chunk):
    check(case, block_bytes, chunk)


@pytest.mark.slow
@settings(max_examples=4000, **FUZZ)
@given(case=csv_cases(), block_bytes=st.integers(8, 400), chunk=st.integers(1, 200))
def test_the_data_step_reads_what_the_strict_csv_reader_reads_thousands_of_times(case, block_bytes, chunk):
    check(case, block_bytes, chunk)
