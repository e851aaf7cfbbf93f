"""`read_feature_rows`, the one reader the demo uses to score a user's CSV: the data step's own rules, so it reads
exactly the rows `split_stream` sends to the channels, with the same values, and names each row's line."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.features import read_feature_rows
from kmeans_pipeline.data.split import split_stream
from kmeans_pipeline.errors import DataValidationError


def channel_rows(data: bytes, features: list[str] | None, block_bytes: int) -> np.ndarray:
    """Every row split_stream writes to train and test, as numbers, in one sorted matrix."""
    train, test = io.BytesIO(), io.BytesIO()
    result = split_stream([data], train, test, feature_columns=features, block_bytes=block_bytes)
    dim = len(result.feature_columns)
    rows = np.concatenate([parse_rows(train.getvalue(), dim), parse_rows(test.getvalue(), dim)])
    return rows[np.lexsort(rows.T[::-1])]


def sorted_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.lexsort(matrix.T[::-1])]


NUMBER_TEXT = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.3e}"),
    st.sampled_from(["+4", ".5", "5.", "-.5", "007", " 12 ", '"3.25"', '" 7"']),
)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)


@st.composite
def accepted_csvs(draw):
    """CSV bytes the data step accepts: BOM or not, quoted header names or not, text columns that are not
    features (quoted when they must be), blank lines, LF or CRLF."""
    features = ["Amount", "tranCode"]
    text_columns = draw(st.lists(st.sampled_from(["id", "merchant"]), unique=True))
    header = draw(st.permutations(features + text_columns))
    quote_header = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(f'"{name}"' if quote_header else name for name in header)]
    for _ in range(draw(st.integers(5, 30))):
        if draw(st.integers(0, 9)) == 0:
            lines.append("")
        fields = []
        for name in header:
            if name in features:
                fields.append(draw(NUMBER_TEXT))
            else:
                fields.append('"' + draw(TEXT).replace('"', '""') + '"')
        lines.append(",".join(fields))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + newline.join(lines) + newline).encode("utf-8"), features


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=accepted_csvs(), block_bytes=st.sampled_from([16, 64, 1 << 20]))
def test_the_reader_reads_the_rows_the_data_step_splits_with_the_same_values(case, block_bytes):
    data, features = case
    names, X, lines = read_feature_rows(
        [data[i : i + 7] for i in range(0, len(data), 7)], features, block_bytes=block_bytes
    )
    assert names == features
    np.testing.assert_array_equal(sorted_rows(X), channel_rows(data, features, block_bytes))
    assert len(lines) == len(X) and (np.diff(lines) > 0).all() and lines.min(initial=2) >= 2


def test_the_reader_takes_a_bom_quoted_names_text_columns_and_names_each_rows_line():
    data = (
        '\ufeff"id","Amount","merchant","tranCode"\r\n'
        'tx-1,45.5,"Shop, Inc",1\r\n'
        "\r\n"
        'tx-2,2500,"Say ""hi""",4\r\n'
        'tx-3,9000,"two\nlines",1\r\n'
    ).encode()
    names, X, lines = read_feature_rows([data], ["tranCode", "Amount"])
    assert names == ["tranCode", "Amount"]
    assert X.tolist() == [[1, 45.5], [4, 2500], [1, 9000]]
    assert lines.tolist() == [2, 4, 5]  # a row over two lines is named by its first line, as errors are


def test_the_reader_reads_every_column_when_none_are_named_and_reads_gzip():
    data = gzip.compress(b"a,b\n1,2\n3,4\n")
    names, X, lines = read_feature_rows([data])
    assert names == ["a", "b"] and X.tolist() == [[1, 2], [3, 4]] and lines.tolist() == [2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "the object is empty"),
        (b"Amount\n1\n", "feature column(s) tranCode not in the header"),
        (b"Amount,tranCode\n1,x\n", "line 2, column tranCode: 'x' is not a number"),
    ],
)
def test_the_reader_refuses_what_the_data_step_refuses_with_the_same_words(text, message):
    with pytest.raises(DataValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_feature_rows([text], ["Amount", "tranCode"])
