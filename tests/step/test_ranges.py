"""The data step at any size: a file cut into many ranges, read by workers on their own and merged, reads every row
once, names the first problem by the same line and column as one range does, follows quoted line breaks across
range boundaries, merges statistics to a single pass's within 1e-12, and gives the same dataset whatever the
number of workers."""

from __future__ import annotations

import csv
import gzip
import io

import boto3
import numpy as np
import pytest

from kmeans_pipeline.aws.work import AGAIN_ITEMS, PLAN, Work
from kmeans_pipeline.data.ranges import QuoteTracker, ends_of
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.data_step import prepare_dataset
from testkit.aws import REGION, put_csv, read_text

START = "2026-12-06T10:00:00.000Z"


def config_for(settings, key: str, name: str = "ranges", **overrides):
    return resolve_run({"dataKey": key, **overrides}, name, START, settings, None)


def s3():
    return boto3.client("s3", region_name=REGION)


def channel_lines(uri: str) -> list[str]:
    bucket, prefix = uri[5:].split("/", 1)
    keys = sorted(o["Key"] for o in s3().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
    return [line for key in keys for line in read_text(bucket, key).splitlines()]


def channels(dataset) -> dict[str, list[str]]:
    raw_test = dataset.raw_test_uri or dataset.test_uri
    raw_train = dataset.train_uri.replace("features/", "")
    return {
        "train": channel_lines(dataset.train_uri),
        "test": channel_lines(dataset.test_uri),
        "raw_train": channel_lines(raw_train),
        "raw_test": channel_lines(raw_test),
    }


def transactions(rows: int, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    codes = rng.integers(1, 5, rows)
    amounts = np.round(rng.lognormal(3, 1, rows), 2)
    stamps = 1_733_000_000_000_000_000 + rng.integers(-90_000_000, 90_000_000, rows)
    lines = [f"t{i},{c},{a},{s}" for i, (c, a, s) in enumerate(zip(codes, amounts, stamps))]
    return "id,tranCode,Amount,stamp\n" + "\n".join(lines) + "\n"


FEATURES = ["tranCode", "Amount", "stamp"]


# The split's windows in these tests (the stack's are 256 KiB): small files cut into many ranges.
WINDOW = 1024


def range_size(length: int, ranges: int, window: int = WINDOW) -> int:
    """The size, in whole windows, that cuts ``length`` bytes into ``ranges`` ranges (the last perhaps shorter)."""
    return -(-length // ranges // window) * window if length > ranges * window else window


def run(
    settings,
    text: str | bytes,
    *,
    ranges: int = 1,
    workers: int = 4,
    name="ranges",
    window: int = WINDOW,
    **overrides,
):
    body = text.encode() if isinstance(text, str) else text
    key = f"incoming/{name}.csv"
    put_csv(settings.data_bucket, key, body)
    config = config_for(settings, key, name=name, **{"featureColumns": FEATURES, **overrides})
    size = -(-len(body) // window) * window if ranges == 1 else range_size(len(body), ranges, window)
    return config, prepare_dataset(config, settings, s3(), workers=workers, range_bytes=size, window_bytes=window)


def plan_size(settings, config) -> int:
    return len(Work(s3(), config, settings).get_json(PLAN))


def treated(lines: list[str]) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in lines])


def assert_same_dataset(one, many) -> None:
    """The raw channels byte for byte, the treated ones to float32's precision (their means merge within 1e-12),
    the same treatments and the same k."""
    a, b = channels(one), channels(many)
    assert a["raw_train"] == b["raw_train"] and a["raw_test"] == b["raw_test"]
    assert (one.train_rows, one.test_rows) == (many.train_rows, many.test_rows)
    for name in ("train", "test"):
        assert np.allclose(treated(a[name]), treated(b[name]), rtol=1e-6, atol=1e-6)
    for x, y in zip(one.treatment.columns, many.treatment.columns, strict=True):
        assert (x.column, x.kind, x.levels, x.standardize) == (y.column, y.kind, y.levels, y.standardize)
        if x.mean is not None:
            assert x.mean == pytest.approx(y.mean, rel=1e-12) and x.std == pytest.approx(y.std, rel=1e-12)
    assert one.k_choice.k == many.k_choice.k and one.k_choice.sample_rows == many.k_choice.sample_rows


@pytest.mark.parametrize("stratify", [None, "tranCode"])
def test_eight_ranges_give_the_same_dataset_as_one_range(settings, stratify):
    text = transactions(12_000)
    auto = settings.model_copy(update={"default_k": "auto"})  # k chosen from the merged sample
    extra = {"stratifyColumn": stratify} if stratify else {}
    one_config, one = run(auto, text, name=f"one-{stratify}", **extra)
    eight_config, eight = run(auto, text, ranges=8, name=f"eight-{stratify}", **extra)
    assert plan_size(settings, one_config) == 1 and plan_size(settings, eight_config) == 8
    assert_same_dataset(one, eight)
    assert one.k_choice.source == "data" and len(channels(eight)["raw_train"] + channels(eight)["raw_test"]) == 12_000
    # Each window sends floor(0.2 x its rows + u) to test: the whole file within a few rows of 20%.
    assert abs(one.test_rows - 2400) < 40


def test_ranges_merge_a_partial_sample_into_the_one_a_single_range_keeps(settings, monkeypatch):
    """With more training rows than the sample holds, the merged sample (and what is decided on it: the log rule's
    percentiles, k) is the same rows whatever the ranges."""
    import kmeans_pipeline.data.treatment as treatment
    import kmeans_pipeline.steps.merge_ranges as merge

    monkeypatch.setattr(treatment, "sample_capacity", lambda dim: 700)
    monkeypatch.setattr(merge, "sample_capacity", lambda dim: 700)
    text = transactions(8000, seed=9)
    auto = settings.model_copy(update={"default_k": "auto"})
    _, one = run(auto, text, name="sample-one")
    _, seven = run(auto, text, ranges=7, name="sample-seven")
    assert_same_dataset(one, seven)
    assert 650 <= one.k_choice.sample_rows <= 700


def test_merged_means_and_deviations_equal_one_pass_over_the_training_rows_within_1e_12(settings):
    config, dataset = run(settings, transactions(6000, seed=3), ranges=9, standardize=True)
    raw = np.array([[float(v) for v in line.split(",")] for line in channels(dataset)["raw_train"]])
    assert len(raw) == dataset.train_rows
    # numpy's float64 in one pass, centred on an exact long-double mean: the reference.
    mean = raw.astype(np.longdouble).mean(0)
    std = np.sqrt(((raw.astype(np.longdouble) - mean) ** 2).mean(0))
    for j, column in enumerate(dataset.treatment.columns):
        assert column.mean == pytest.approx(float(mean[j]), rel=1e-12)
        assert column.std == pytest.approx(float(std[j]), rel=1e-12)


def test_the_dataset_does_not_depend_on_how_many_workers_read_it(settings):
    text = transactions(4000, seed=5)
    _, few = run(settings, text, ranges=10, workers=1, name="few", standardize=True)
    _, many = run(settings, text, ranges=10, workers=8, name="many", standardize=True)
    assert channels(few) == channels(many)
    assert few.treatment == many.treatment and few.train_rows == many.train_rows


@pytest.mark.parametrize("where", ["value", "ragged", "quote"])
def test_a_problem_in_the_seventh_range_is_named_by_the_same_line_and_column_as_one_range(settings, where):
    lines = transactions(3000).splitlines(keepends=True)
    bad = 2550  # in the seventh of eight ranges
    lines[bad] = {
        "value": "t2549,2,abc,1733000000000000000\n",
        "ragged": "t2549,2,3\n",
        "quote": 't2549,2,"3"4,1733000000000000000\n',
    }[where]
    text = "".join(lines)
    size = range_size(len(text.encode()), 8)
    assert 6 * size < len("".join(lines[:bad]).encode()) < 7 * size
    with pytest.raises(DataValidationError) as one:
        run(settings, text, name="one")
    with pytest.raises(DataValidationError) as eight:
        run(settings, text, ranges=8, name="eight")
    assert str(one.value) == str(eight.value) and f"line {bad + 1}" in str(one.value)


def noted(rows: int, breaks=lambda i: True) -> str:
    """Rows whose second field is a quoted note of two lines (one line where ``breaks(i)`` is False)."""
    out = ["id,note,tranCode,Amount,stamp\n"]
    for i in range(rows):
        gap = "\n" if breaks(i) else " "
        note = f'"a note of ""row {i:05d}"", long enough to hold most boundaries{gap}end"'
        out.append(f"t{i},{note},{i % 4 + 1},{(i * 37) % 1000}.5,{1_733_000_000_000_000_000 + i}\n")
    return "".join(out)


def inside_at(text: str, cuts: int, window: int = WINDOW) -> list[int]:
    """The boundaries of a cut into ``cuts`` ranges whose line start (the first line feed at or after the boundary's
    byte - 1) falls inside a quoted note."""
    data = text.encode()
    size = range_size(len(data), cuts, window)
    starts = set(_row_starts(data))
    return [b for b in range(size, len(data), size) if data.index(b"\n", b - 1) + 1 not in starts]


def test_a_quoted_line_break_across_every_boundary_of_eight_ranges_is_read_as_one_range_reads_it(settings):
    rows = 2500
    text = noted(rows)
    window = next(w for w in range(1000, 2000) if len(inside_at(text, 8, w)) == 7)
    features = {"featureColumns": ["tranCode", "Amount", "stamp"], "standardize": True, "window": window}
    one_config, one = run(settings, text, name="one", **features)
    eight_config, eight = run(settings, text, ranges=8, name="eight", **features)
    again = Work(s3(), eight_config, settings).find_json(AGAIN_ITEMS)
    assert again is not None and [item["index"] for item in again] == list(range(1, 8))
    records = list(csv.reader(io.StringIO(text)))[1:]
    expected = sorted(f"{r[2]},{r[3]},{r[4]}" for r in records)
    for dataset in (one, eight):
        got = channels(dataset)
        assert sorted(got["raw_train"] + got["raw_test"]) == expected
        assert dataset.train_rows + dataset.test_rows == rows
        assert len(got["train"]) == dataset.train_rows and len(got["test"]) == dataset.test_rows
    assert {k: v for k, v in channels(one).items() if k.startswith("raw")} == {
        k: v for k, v in channels(eight).items() if k.startswith("raw")
    }
    for x, y in zip(one.treatment.columns, eight.treatment.columns):
        assert x.kind == y.kind and x.levels == y.levels


def test_a_bad_value_after_a_quoted_line_break_across_a_boundary_is_named_by_its_line(settings):
    rows = next(n for n in range(900, 1100) if len(inside_at(noted(n, lambda i: i % 3 == 0), 6)) >= 1)
    text = noted(rows, lambda i: i % 3 == 0)
    lines = text.splitlines(keepends=True)
    data = text.encode()
    boundary = inside_at(text, 6)[0]
    line = data[:boundary].count(b"\n") + 2  # a line after the note across the boundary
    while not (lines[line].startswith("t") and ' end",' in lines[line]):  # a row of one line
        line += 1
    head, code, _, stamp = lines[line].rsplit(",", 3)
    lines[line] = ",".join([head, code, "oops", stamp])
    text = "".join(lines)
    features = {"featureColumns": ["tranCode", "Amount", "stamp"]}
    with pytest.raises(DataValidationError) as one:
        run(settings, text, name="one", **features)
    with pytest.raises(DataValidationError) as six:
        run(settings, text, ranges=6, name="six", **features)
    assert str(one.value) == str(six.value) and f"line {line + 1}, column Amount" in str(one.value)


def test_a_quote_never_closed_in_the_last_range_is_named_where_it_opened(settings):
    text = transactions(2000) + 't2000,1,"5\n' + "t2001,1,6,1733000000000000000\n" * 50
    with pytest.raises(DataValidationError) as one:
        run(settings, text, name="one")
    with pytest.raises(DataValidationError) as five:
        run(settings, text, ranges=5, name="five")
    assert str(one.value) == str(five.value) and "line 2002, column Amount: a quoted field opens here" in str(one.value)


def long_note(rows: int = 400, at: int = 200, inner: int = 150) -> str:
    """Rows with one quoted note, at row ``at``, of ``inner`` lines that look like rows: ~4.8 KB, so that a cut into
    ranges of one 1 KiB window leaves whole ranges inside it."""
    out = ["id,note,tranCode,Amount,stamp\n"]
    for i in range(rows):
        if i == at:
            note = "".join(f"x{j},y,1,2.5,1733000000000000000\n" for j in range(inner))
            out.append(f't{i},"{note}end",1,2.5,1733000000000000001\n')
        else:
            out.append(f"t{i},n,{i % 4 + 1},{(i * 37) % 1000}.5,{1_733_000_000_000_000_000 + i}\n")
    return "".join(out)


def test_a_quoted_field_that_covers_whole_ranges_leaves_none_of_their_lines_in_the_channels(settings):
    """A range whose every line is inside a note of the range before is nobody's rows: the shards its first reading
    wrote (under the assumption that a row starts there) are gone, and the channels hold what the counts say."""
    text = long_note()
    features = {"featureColumns": ["tranCode", "Amount", "stamp"], "standardize": True}
    _, one = run(settings, text, name="covered-one", **features)
    _, many = run(settings, text, ranges=len(text.encode()) // WINDOW, name="covered-many", **features)
    records = list(csv.reader(io.StringIO(text)))[1:]
    expected = sorted(f"{r[2]},{r[3]},{r[4]}" for r in records)
    for dataset in (one, many):
        got = channels(dataset)
        assert sorted(got["raw_train"] + got["raw_test"]) == expected
        assert (len(got["raw_train"]), len(got["raw_test"])) == (dataset.train_rows, dataset.test_rows)
        assert (len(got["train"]), len(got["test"])) == (dataset.train_rows, dataset.test_rows)
    assert_same_dataset(one, many)


def test_tiny_ranges_without_a_line_start_of_their_own_are_empty(settings):
    text = transactions(300)
    _, one = run(settings, text, name="one")
    _, many = run(
        settings, text, ranges=len(text) // 7, name="many", window=7
    )  # ranges of 7 bytes: most hold no line start
    assert sorted(channels(one)["raw_train"] + channels(one)["raw_test"]) == sorted(
        channels(many)["raw_train"] + channels(many)["raw_test"]
    )


def test_a_prefix_of_part_files_is_read_as_one_input_and_a_problem_names_its_part(settings):
    text = transactions(3000)
    header, rows = text.split("\n", 1)
    lines = rows.splitlines(keepends=True)
    parts = [header + "\n" + "".join(lines[:1000]), header + "\n" + "".join(lines[1000:])]
    put_csv(settings.data_bucket, "incoming/parts/part-0.csv", parts[0])
    put_csv(settings.data_bucket, "incoming/parts/part-1.csv.gz", gzip.compress(parts[1].encode()))
    config = config_for(settings, "incoming/parts/", featureColumns=FEATURES, standardize=True)
    dataset = prepare_dataset(config, settings, s3(), range_bytes=20 * WINDOW, window_bytes=WINDOW)
    _, whole = run(settings, text, name="whole", standardize=True)
    got = channels(dataset)
    assert sorted(got["raw_train"] + got["raw_test"]) == sorted(
        channels(whole)["raw_train"] + channels(whole)["raw_test"]
    )
    assert dataset.source.parts == 2 and dataset.source.key == "incoming/parts/"
    assert (
        dataset.source.size
        == len(parts[0])
        + s3().head_object(Bucket=settings.data_bucket, Key="incoming/parts/part-1.csv.gz")["ContentLength"]
    )

    put_csv(
        settings.data_bucket,
        "incoming/parts/part-1.csv.gz",
        gzip.compress(parts[1].replace("t2500,", "t2500,x", 1).encode()),
    )
    bad = parts[1].splitlines()
    line = next(i for i, row in enumerate(bad) if row.startswith("t2500,")) + 1
    with pytest.raises(DataValidationError, match=rf"parts/part-1.csv.gz: line {line}, column tranCode"):
        prepare_dataset(config_for(settings, "incoming/parts/", name="bad", featureColumns=FEATURES), settings, s3())

    put_csv(settings.data_bucket, "incoming/parts/part-1.csv.gz", gzip.compress(b"id,code\n1,2\n"))
    with pytest.raises(DataValidationError, match="part-1.csv.gz: line 1: its header .* every part must have the same"):
        prepare_dataset(config_for(settings, "incoming/parts/", name="odd", featureColumns=FEATURES), settings, s3())


@pytest.mark.parametrize("seed", range(40))
def test_both_quote_readings_agree_with_a_strict_csv_reader_at_every_line_start(seed):
    rng = np.random.default_rng(seed)
    fields = ["1", '"a,b"', '"x\ny"', '""', '"q""\n"', 'in"ch', '"\n\n"', "2"]
    text = "".join(",".join(rng.choice(fields, 3)) + "\n" for _ in range(30))
    data = text.encode()
    newlines = [i + 1 for i, c in enumerate(data) if c == ord("\n")]
    # The strict reader's row starts, from the start: every state at a line start is known.
    starts = {0} | set(_row_starts(data))
    cut = newlines[int(rng.integers(0, len(newlines) - 1))]
    head, tail = data[:cut], data[cut:]
    tracker = QuoteTracker()
    for piece in _lines(tail, rng):
        tracker.see(piece)
    inside_at_cut = cut not in starts
    end_inside, _ = ends_of(head, False)
    assert end_inside == inside_at_cut
    final_inside = tracker.inside_if_inside if inside_at_cut else tracker.inside
    assert final_inside is False  # every record closes by the text's end
    if inside_at_cut:
        first = next(s for s in sorted(starts) if s > cut)
        assert tracker.record_if_inside == (first - cut if first < len(data) else len(tail))


def _row_starts(data: bytes) -> list[int]:
    text = data.decode()
    out, inside, field_start = [], False, True
    i = 0
    while i < len(text):
        ch = text[i]
        if inside:
            if ch == '"':
                if i + 1 < len(text) and text[i + 1] == '"':
                    i += 2
                    continue
                inside = False
        elif ch == '"' and field_start:
            inside = True
        elif ch == "\n":
            out.append(i + 1)
        field_start = not inside and ch in ",\n"
        i += 1
    return out


def _lines(data: bytes, rng) -> list[bytes]:
    """Whole lines in pieces of a few lines each."""
    lines = data.splitlines(keepends=True)
    out, at = [], 0
    while at < len(lines):
        step = int(rng.integers(1, 4))
        out.append(b"".join(lines[at : at + step]))
        at += step
    return out
