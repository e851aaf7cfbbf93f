"""The data step's core: the fast (vectorised) path accepts exactly what the exact (row-by-row) path accepts,
gives every row the same fate, and keeps memory bounded whatever the input's size."""

from __future__ import annotations

import gzip
import io
import itertools
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_pipeline.data import blocks as csv_blocks
from kmeans_pipeline.data import fast, split
from kmeans_pipeline.data.header import parse_header
from kmeans_pipeline.data.split import split_stream
from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.errors import DataValidationError

NUMBERS = ["0", "7", "-3", "+4", "12.5", "-0.25", ".5", "5.", "-.5", "1e5", "2E-3", "1.5e+07", "007", "99999", "1e100"]
NOT_NUMBERS = [
    "",
    " 3",
    "1.2.3",
    "1e",
    "e5",
    "--1",
    "1-2",
    "+",
    ".",
    "1e5.2",
    "1e5e2",
    "1e999",
    "nan",
    "inf",
    "abc",
    '"4"',
    "1,5",
    "5+",
    ".e5",
    "+.e1",
    "1_000",
    "\uff11",
    "1 ",
    "1e+",
    "-.",
    "5.e3",
]


def run(data: bytes, *, exact_only: bool = False, block_bytes: int = 64, **options):
    train, test = io.BytesIO(), io.BytesIO()
    original = split.scan
    if exact_only:
        split.scan = lambda *args: None
    try:
        result = split_stream(
            [data[i : i + 13] for i in range(0, len(data), 13)], train, test, block_bytes=block_bytes, **options
        )
        return result, train.getvalue(), test.getvalue()
    except DataValidationError as exc:
        return str(exc), None, None
    finally:
        split.scan = original


def values(channel: bytes) -> list[list[float]]:
    return [[float(v) for v in line.split(b",")] for line in channel.splitlines()]


@st.composite
def csv_files(draw):
    width = draw(st.integers(1, 3))
    header = ",".join(["tranCode", "Amount", "Other"][:width])
    field = st.one_of(
        st.sampled_from(NUMBERS), st.sampled_from(NUMBERS), st.sampled_from(NUMBERS), st.sampled_from(NOT_NUMBERS)
    )
    row = st.lists(field, min_size=width, max_size=width).map(",".join)
    odd_row = st.sampled_from(["", "1,2,3,4", "5"])
    lines = draw(st.lists(st.one_of(row, row, row, row, odd_row), min_size=0, max_size=40))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    final = draw(st.sampled_from([newline, ""]))
    return (header + newline + newline.join(lines) + final).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_files(), block_bytes=st.sampled_from([16, 64, 4096]), stratify=st.booleans(), select=st.booleans())
def test_the_fast_path_agrees_with_the_exact_path_on_every_input(data, block_bytes, stratify, select):
    options = {
        "k": 1,
        "stratify_column": "tranCode" if stratify else None,
        "feature_columns": ["tranCode"] if select else None,
    }
    fast = run(data, block_bytes=block_bytes, **options)
    exact = run(data, block_bytes=block_bytes, exact_only=True, **options)
    assert fast[0] == exact[0]  # the same counts, or the same error naming the same line and column
    if fast[1] is not None:
        assert values(fast[1]) == values(exact[1]) and values(fast[2]) == values(exact[2])


TEXTS = [
    "",
    "x",
    "Acme",
    "T0001",
    "2026-11-23",
    "a b",
    '"Acme, Inc."',
    '"Joe""s, LLC"',
    '""',
    '"a\nb"',
    '"a\r\nb"',
    '"1,5"',
    '" 3"',
    '"4"',
    "caf\u00e9",
    " lead",
    'a"b',
    '"open',
    '"a"b',
    "x\ry",
    "\u00a0nb",
]


@st.composite
def mixed_csv_files(draw):
    """Numeric and text columns in any order, quoted fields (commas, doubled quotes, line breaks inside), CRLF,
    a BOM; features any ordered subset of the numeric columns; perhaps a stratum in a text column."""
    numeric = draw(st.lists(st.sampled_from(["n1", "n2", "n3"]), min_size=1, max_size=3, unique=True))
    text = draw(st.lists(st.sampled_from(["id", "date", "merchant"]), min_size=0, max_size=3, unique=True))
    header = draw(st.permutations(numeric + text))
    number = st.one_of(
        st.sampled_from(NUMBERS),
        st.sampled_from(NUMBERS),
        st.sampled_from(NUMBERS),
        st.sampled_from(NUMBERS).map(lambda v: f'"{v}"'),
        st.sampled_from(NOT_NUMBERS),
    )
    words = st.one_of(st.sampled_from(TEXTS), st.sampled_from(TEXTS[:8]), st.sampled_from(TEXTS[:8]))
    row = st.tuples(*[number if name in numeric else words for name in header]).map(",".join)
    lines = draw(
        st.lists(
            st.one_of(row, row, row, row, st.sampled_from(["", ",".join([""] * len(header))])), min_size=0, max_size=30
        )
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    final = draw(st.sampled_from([newline, ""]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    features = draw(st.permutations(numeric))[: draw(st.integers(1, len(numeric)))]
    stratify = draw(st.sampled_from([None, *header]))
    data = (bom + ",".join(header) + newline + newline.join(lines) + final).encode()
    return data, features, stratify


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mixed_csv_files(), block_bytes=st.sampled_from([16, 64, 4096]))
def test_text_columns_quotes_and_any_column_order_get_the_same_answer_from_both_paths(case, block_bytes):
    data, features, stratify = case
    options = {"k": 1, "feature_columns": features, "stratify_column": stratify}
    fast = run(data, block_bytes=block_bytes, **options)
    exact = run(data, block_bytes=block_bytes, exact_only=True, **options)
    assert fast[0] == exact[0]
    if fast[1] is not None:
        assert values(fast[1]) == values(exact[1]) and values(fast[2]) == values(exact[2])


def test_well_formed_text_columns_and_quotes_stay_on_the_fast_path():
    rows = b"".join(
        b'T%04d,2026-11-%02d,%d,%d.25,"Shop %d, ""Main"" St"\r\n' % (i, i % 28 + 1, i % 5, i, i) for i in range(3000)
    )
    layout = parse_header(b"txnId,date,tranCode,Amount,merchant\r\n", ["Amount", "tranCode"], "date")
    scan = fast.scan(rows, layout)
    assert scan is not None and scan.rows == 3000
    part = fast.route(scan, StratifiedSplitter(0.2, 1).assign(scan.rows, scan.strata))
    channel = sorted(part.train.splitlines() + part.test.splitlines())
    assert channel == sorted(b"%d.25,%d" % (i, i % 5) for i in range(3000))


def test_the_worker_pool_gives_the_same_channels_as_one_thread():
    data = b"id,a,b\n" + b"".join(b'x%d,%d,"%d,5"\n' % (i, i % 3, i) for i in range(20_000))
    outputs = []
    for workers in (1, 2, 3):
        train, test, seen = io.BytesIO(), io.BytesIO(), []
        result = split_stream(
            [data[i : i + 5000] for i in range(0, len(data), 5000)],
            train,
            test,
            feature_columns=["a"],
            stratify_column="a",
            block_bytes=4096,
            workers=workers,
            on_train=lambda text, keys, seen=seen: seen.append(text),
        )
        assert b"".join(seen) == train.getvalue()  # on_train sees the training channel in order
        outputs.append((result, train.getvalue(), test.getvalue()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_bad_line_before_an_endless_one_is_the_one_named():
    data = b"a,b\n" + b"1,2\n" * 5000 + b"3,x\n" + b"1,2\n" * 5000 + b"9" * (csv_blocks.MAX_LINE_BYTES + 10) + b"\n"
    assert "line 5002, column b: 'x' is not a number" in run(data, block_bytes=1024, k=1)[0]


@pytest.mark.parametrize("token", NUMBERS + NOT_NUMBERS)
@pytest.mark.parametrize("column", [0, 1])
def test_each_odd_value_gets_the_same_answer_from_both_paths(token, column):
    rows = [["1", "2.5"] for _ in range(30)]
    rows[17][column] = token
    data = ("tranCode,Amount\n" + "\n".join(",".join(row) for row in rows) + "\n").encode()
    fast, exact = run(data, block_bytes=1 << 20, k=1), run(data, block_bytes=1 << 20, exact_only=True, k=1)
    assert fast[0] == exact[0]
    if fast[1] is not None:
        assert values(fast[1]) == values(exact[1]) and values(fast[2]) == values(exact[2])


def test_the_fast_path_takes_plain_numbers_and_keeps_their_text():
    data = b"tranCode,Amount\n" + b"".join(b"%d,%d.%02d\n" % (i % 5, i, i % 100) for i in range(5000))
    block = data[data.index(b"\n") + 1 :]
    layout = parse_header(b"tranCode,Amount\n", None, None)
    part = fast.split_fast(block, layout, StratifiedSplitter(0.2, 1))
    assert part is not None and part.rows == 5000 and part.test_rows == 1000
    assert sorted(part.train.splitlines() + part.test.splitlines()) == sorted(block.splitlines())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"a,b\n1,2\n3,x\n", "line 3, column b: 'x' is not a number"),
        (b"a,b\n1,2\n\n\n3,4,5\n", "line 5: 3 fields, but the header has 2"),
        (b"a,b\n1,2\n3,1e999\n", "line 3, column b: '1e999' is beyond float32's range"),
        (b"a,b\r\n1,2\r\n3,\r\n", "line 3, column b: '' is not a number"),
    ],
)
def test_errors_name_the_line_and_column_from_any_block(text, message):
    for block_bytes in (8, 64, 1 << 20):
        assert message in run(text, block_bytes=block_bytes, k=1)[0]


def test_quoted_fields_may_span_blocks():
    data = b'a,b\n1,2\n"3\n",4\n5,6\n' * 1 + b"".join(b"%d,%d\n" % (i, i) for i in range(50))
    result, train, test = run(data, block_bytes=8, k=1)
    assert result.train_rows + result.test_rows == 53


def test_gzip_is_read_and_a_corrupt_gzip_is_refused():
    rows = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(100))
    result, train, test = run(gzip.compress(rows), k=1)
    assert result.train_rows + result.test_rows == 100
    assert "cannot be unpacked" in run(gzip.compress(rows)[:20] + b"garbage" * 10, k=1)[0]
    assert "truncated" in run(gzip.compress(rows)[:-12], k=1)[0]


def test_memory_stays_bounded_whatever_the_input_size():
    def rows(count):
        yield b"tranCode,Amount\n"
        line = b"".join(b"%d,%d.25\n" % (i % 7, i) for i in range(10_000))
        for _ in range(count // 10_000):
            yield line

    class Sink:
        def write(self, data):
            pass

    peaks = []
    for count in (1_000_000, 3_000_000):  # both fill the pipeline of blocks in flight many times over
        tracemalloc.start()
        split_stream(rows(count), Sink(), Sink())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # About 25 blocks of working memory per worker: the blocks in flight and their index arrays. Three times the
    # rows would take about three times the memory if it grew with the input; how many blocks are in flight at the
    # peak moves with the machine's load (1.24x once, beside the rest of make test), so the margin is 1.5x.
    assert peaks[1] < 1.5 * peaks[0] and peaks[1] < 32 * csv_blocks.BLOCK_BYTES * split.default_workers()


def test_line_blocks_end_at_newlines_and_refuse_endless_lines():
    data = b"".join(b"%d\n" % i for i in range(1000))
    blocks = list(csv_blocks.line_blocks(iter([data[i : i + 7] for i in range(0, len(data), 7)]), 100))
    assert b"".join(blocks) == data and all(b.endswith(b"\n") and len(b) <= 100 for b in blocks)
    with pytest.raises(csv_blocks.LineTooLong):
        list(csv_blocks.line_blocks(itertools.repeat(b"x" * 4096, 600), 1024))


def test_a_gzip_of_several_members_is_read_whole():
    rows = [b"%d,%d\n" % (i, i) for i in range(1000)]
    data = gzip.compress(b"a,b\n" + b"".join(rows[:10])) + gzip.compress(b"".join(rows[10:])) + b"\0" * 64
    result, train, test = run(data, k=1)
    assert result.train_rows + result.test_rows == 1000


def test_a_line_of_exactly_the_limit_is_fine_anywhere_and_one_byte_more_is_not():
    limit = csv_blocks.MAX_LINE_BYTES
    # Column b is not a feature: any text may fill it.
    ok = b"a,b\n" + b"1," + b"x" * (limit - 2) + b"\n" + b"3,4\n5,6\n" * 10
    for data in (ok, ok.rstrip(b"\n")):
        result = run(data, block_bytes=1 << 16, k=1, feature_columns=["a"])[0]
        assert not isinstance(result, str) and result.train_rows + result.test_rows == 21, result
    too_long = b"a,b\n1,2\n" + b"1," + b"x" * (limit - 1) + b"\n3,4\n"
    assert "line 3 is longer than" in run(too_long, block_bytes=1 << 16, k=1, feature_columns=["a"])[0]


def test_a_bad_value_before_a_broken_gzip_end_is_the_one_named():
    # The bad row sits in the last blocks read, still in flight on the worker pool when the gzip error comes.
    rows = b"a,b\n" + b"1,2\n" * 200 + b"3,x\n" + b"4,5\n" * 20
    assert "line 202, column b: 'x' is not a number" in run(gzip.compress(rows)[:-8], block_bytes=64, k=1)[0]


@pytest.mark.parametrize("stratify", [None, "a"])
def test_the_split_depends_on_the_windows_not_on_the_blocks_or_the_pieces_read(stratify):
    # Quoted line breaks everywhere, some across window boundaries: blocks of any size, pieces of any size, the
    # exact path or the fast one, every row keeps its fate (each window's rows are split in one draw).
    data = b"id,a,b\n" + b"".join(
        b'x%d,%d,"%d\n%s"\n' % (i, i % 3, i, b"y" * (i % 37)) if i % 4 else b"x%d,%d,%d\n" % (i, i % 3, i)
        for i in range(6000)
    )
    outputs = set()
    for block_bytes, piece, exact_only in ((1 << 19, 1 << 16, False), (512, 13, False), (4096, 999, True)):
        train, test = io.BytesIO(), io.BytesIO()
        original = split.scan
        if exact_only:
            split.scan = lambda *args: None
        try:
            split_stream(
                [data[i : i + piece] for i in range(0, len(data), piece)],
                train,
                test,
                feature_columns=["a"],
                stratify_column=stratify,
                block_bytes=block_bytes,
                window_bytes=2048,
            )
        finally:
            split.scan = original
        # the exact path writes each value as Python's repr of the float: the same numbers in other text
        outputs.add(tuple(tuple(float(v) for v in channel.getvalue().split()) for channel in (train, test)))
    assert len(outputs) == 1
    ((train_rows, test_rows),) = outputs
    assert len(train_rows) + len(test_rows) == 6000


def test_a_block_is_cut_where_rows_start_in_the_next_window():
    rows = [b'%d,"note\n%d"\n' % (i, i) if i % 2 else b"%d,plain\n" % i for i in range(400)]
    data = b"".join(rows)
    starts, at = [], 0
    for row in rows:
        starts.append(at)
        at += len(row)
    pieces = list(csv_blocks.by_window(csv_blocks.RowBlock(data, 1), 256, base=100))
    assert b"".join(p.data for p in pieces) == data
    for piece in pieces:
        inside = [s + 100 for s in starts if piece.offset - 100 <= s < piece.offset - 100 + len(piece.data)]
        assert inside[0] == piece.offset and {s // 256 for s in inside} == {piece.offset // 256}
        assert piece.first_line == 1 + data.count(b"\n", 0, piece.offset - 100)


def test_a_block_of_many_windows_feeds_the_learner_a_window_at_a_time():
    # The statistics' sums are merged a piece at a time: a block that holds rows of many windows gives each window's
    # training rows on their own, as blocks of one window each do, so the sums do not change with the block size.
    data = b"a,b\r\n" + b"".join(
        b"%d,%d.%d\r\n" % (i % 7, i, i % 10) + (b"\r\n" if i % 97 == 0 else b"") for i in range(20000)
    )
    calls = []
    for block_bytes in (2048, 1 << 19):
        seen: list = []
        split_stream(
            [data[i : i + 5000] for i in range(0, len(data), 5000)],
            io.BytesIO(),
            io.BytesIO(),
            block_bytes=block_bytes,
            window_bytes=2048,
            on_train=lambda text, keys, seen=seen: seen.append((text, keys.tolist())),
        )
        calls.append(seen)
    assert len(calls[0]) > 100
    assert calls[0] == calls[1]
