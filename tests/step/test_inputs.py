"""Issue 17, the data step's door: what it accepts, writes and says for each input a fuzz of the demo found wrong.
Each test runs Resolve and the data step on a file in the moto bucket, as an execution does (the demo's own door
is tests/workflow/test_demo_door.py)."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

from kmeans_pipeline.data.splitter import StratifiedSplitter
from kmeans_pipeline.errors import DataValidationError, InvalidInputError
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.data_step import prepare_dataset as prepare_data
from testkit.aws import REGION, put_csv, read_text

START = "2026-11-23T10:00:00.000Z"


def run(settings, text: str | bytes, **overrides):
    put_csv(settings.data_bucket, "incoming/in.csv", text)
    s3 = boto3.client("s3", region_name=REGION)
    config = resolve_run({"dataKey": "incoming/in.csv", "k": 2, **overrides}, "in", START, settings, s3)
    return prepare_data(config, settings, s3)


def refused(settings, text: str | bytes, **overrides) -> str:
    with pytest.raises(DataValidationError) as caught:
        run(settings, text, **overrides)
    return str(caught.value)


def channel(uri: str) -> np.ndarray:
    bucket, prefix = uri[5:].split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    text = "".join(read_text(bucket, key) for key in keys)
    return np.array([[float(v) for v in line.split(",")] for line in text.splitlines()])


def rows_of(dataset) -> np.ndarray:
    return np.concatenate([channel(dataset.train_uri), channel(dataset.test_uri)])


# 1. A channel carries every value to float32's precision, whatever else is in the block.
def test_1_raw_ratios_beside_a_billion_keep_their_value(settings):
    ratios = [0.25, 0.75, 1e9] * 10
    text = "kind,ratio\n" + "".join(f"{i % 3},{r}\n" for i, r in enumerate(ratios))
    dataset = run(settings, text, standardize=False, treatments={"kind": "category"})
    ratio = rows_of(dataset)[:, -1]  # the one-hot columns of kind, then ratio
    assert sorted(set(ratio.tolist())) == [0.25, 0.75, 1e9]
    assert sorted(ratio.astype(np.float32).tolist()) == sorted(np.float32(ratios).tolist())


# 2. A spread tiny next to the mean (nanosecond timestamps) is z-scored, and the channel tells the rows apart.
def test_2_nanosecond_timestamps_are_z_scored_with_their_own_spread(settings):
    rng = np.random.default_rng(1)
    stamps = 1_733_500_000_000_000_000 + rng.integers(-90_000_000, 90_000_000, 400)
    dataset = run(settings, "ts\n" + "".join(f"{t}\n" for t in stamps), treatments={"ts": "numeric"}, standardize=True)
    [column] = dataset.treatment.columns
    assert column.standardize and column.std == pytest.approx(np.std(stamps.astype(float)), rel=0.1)  # train rows
    assert "standard deviation is 0" not in column.reason
    z = rows_of(dataset)[:, 0]
    assert len(np.unique(z)) >= 390 and abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2


# 3. A treatment naming a column that is not a feature is refused, with featureColumns or without.
def test_3_a_treatment_of_no_feature_column_is_refused_both_ways(settings):
    text = "a,b\n" + "1,2\n3,4\n5,7\n" * 5
    assert "treatments names nope, which the header does not list as a feature column" in refused(
        settings, text, treatments={"nope": "log"}
    )
    with pytest.raises(InvalidInputError, match="treatments names nope, which featureColumns does not list"):
        run(settings, text, treatments={"nope": "log"}, featureColumns=["a"])


# 5 and 7. Values beyond float32's range are refused with their line and column; values near it work.
@pytest.mark.parametrize("value", ["1e39", "1e308", "-1e200", "1e200", "340282357000000000000000000000000000000"])
def test_5_7_a_value_beyond_float32_is_refused_with_its_line_and_column(settings, value):
    text = "a,b\n" + "1,2\n3,4\n" * 10 + f"5,{value}\n"
    for standardize in (False, True):
        message = refused(settings, text, standardize=standardize)
        assert message.startswith(f"line 22, column b: '{value}' is beyond float32's range"), message


def test_7_values_at_float32s_edge_are_treated_without_overflow(settings):
    text = "a,b\n" + "".join(f"{i % 4},{(-1) ** i * 3.4e38 * (i % 7) / 7}\n" for i in range(40))
    dataset = run(settings, text, standardize=True)
    assert np.isfinite(rows_of(dataset)).all()
    assert all(np.isfinite(c.std) and c.std > 0 for c in dataset.treatment.columns)


# 8. Nanosecond timestamps as raw numbers beside a category column are written as they are.
def test_8_raw_timestamps_beside_a_category_are_written(settings):
    stamps = [1_733_500_000_000_000_000 + 1_000_000_000 * i for i in range(30)]
    text = "code,ts\n" + "".join(f"{i % 3},{t}\n" for i, t in enumerate(stamps))
    dataset = run(settings, text, standardize=False, treatments={"code": "category"})
    written = sorted(rows_of(dataset)[:, -1].astype(np.float32).tolist())
    assert written == sorted(np.float32(stamps).tolist())


# 9. All rows identical: nothing to cluster, said by the data step.
def test_9_a_file_of_one_row_repeated_is_refused(settings):
    for standardize in (False, None):
        message = refused(settings, "a,b\n" + "1.5,2\n" * 300, standardize=standardize)
        assert message == "all 300 data rows hold the same feature values (a=1.5, b=2): K-Means has nothing to cluster"


# 6, 10, 11, 17 and a row of only commas: the shared reader, through the data step.
def inch_mark_file(rows: int, shift: int) -> str:
    """The issue's shape: an inch mark in an unquoted text field now and then, a quoted address over two lines in
    every row (so a block often ends inside one); ``shift`` moves every row, and so every block boundary."""
    lines = ["id" + "x" * shift + ",desc,address,amount"]
    for i in range(rows):
        desc = f'{i % 30}" pipe' if i % 7 == 0 else "washer"
        lines.append(f'{i},{desc},"{i} Main St\nSpringfield",{i % 50}.5')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("shift", [0, 10, 20, 30])
def test_6_an_inch_mark_in_an_unquoted_field_is_text_wherever_the_blocks_end(settings, shift):
    settings = settings.model_copy(update={"max_input_bytes": 1 << 30})
    dataset = run(settings, inch_mark_file(30_000, shift), featureColumns=["amount"], standardize=False)
    assert dataset.train_rows + dataset.test_rows == 30_000


def test_10_an_unclosed_quote_is_named_by_the_line_it_opened_on(settings):
    text = "a,b\n" + "1,2\n" * 5 + '3,"open\n' + "1,2\n" * 300
    message = refused(settings, text)
    assert message.startswith("line 7, column b: a quoted field opens here and is never closed"), message


def test_10_an_unclosed_quote_that_runs_past_a_field_s_limit_is_named_by_its_line(settings):
    text = "a,b\n" + "1,2\n" * 5 + '3,"open\n' + "1,2\n" * 400_000
    message = refused(settings, text)
    assert message.startswith("line 7, column b: a quoted field opens here and runs on for more than"), message


def test_11_a_bad_value_in_a_row_over_several_lines_is_named_by_its_first_line(settings):
    text = 'note,a,b\n"x",1,2\n"two\nlines",3,x\n"y",4,5\n'
    assert refused(settings, text, featureColumns=["a", "b"]).startswith("line 3, column b: 'x' is not a number")


def test_17_cr_line_endings_are_named(settings):
    assert "the file uses CR line endings" in refused(settings, "a,b\r1,2\r3,4\r" * 3)
    assert "the file uses CR line endings" in refused(settings, "a,b\r" + "1,2\r" * 200_000)
    assert refused(settings, "a,b\n1,2\n3,4\r5,6\n").startswith("line 3: a carriage return (CR) inside a line")


def test_a_row_of_only_commas_is_a_row(settings):
    good = "a,b,c\n" + "1,2,3\n4,5,6\n" * 5
    assert refused(settings, good + ",,\n").startswith("line 12, column a: '' is not a number")
    assert refused(settings, good + ",,,,\n").startswith("line 12: 5 fields, but the header has 3")
    assert run(settings, good + "\n  \n" + good[6:]).skipped_blank_lines == 2  # blank lines are still skipped


# 12. A stratify column whose every value has one row.
def test_12_a_stratify_column_of_unique_values_is_named(settings):
    text = "id,a\n" + "".join(f"{i},{i % 7}\n" for i in range(300))
    message = refused(settings, text, stratifyColumn="id", featureColumns=["a"])
    assert message.startswith("stratifyColumn id: none of its 300 values has the 3 rows a value needs"), message


# A value that z-scoring takes beyond float32's range (training rows nearly constant) is named by line and column.
def test_a_value_its_treatment_takes_beyond_float32_is_named(settings):
    text = "a,b\n" + "".join(f"{i % 3},{(1 + i % 2) * 1e-30}\n" for i in range(40)) + "1,1e9\n"
    # A seed that sends the last row (the one block's row 40) to test, so the training rows' spread stays tiny.
    seed = next(s for s in range(100) if StratifiedSplitter(0.05, s).assign(41)[40])
    message = refused(settings, text, standardize=True, testFraction=0.05, seed=seed)
    assert message.startswith("line 42, column b: 1e+09 becomes 2e+39 once z-scored"), message
    assert "standard deviation 5e-31" in message  # the named column's own statistics
    assert "beyond float32's range" in message


# 15. An upload event whose detail is not the object S3 sends is refused with a cause, not an AttributeError.
@pytest.mark.parametrize(
    "detail",
    ["incoming/a.csv", None, 5, {"bucket": "pipeline-data", "object": {"key": "a"}}, {"bucket": {"name": 1}}],
)
def test_15_an_upload_event_of_another_shape_is_refused(settings, detail):
    event = {"detail-type": "Object Created", "source": "aws.s3", "detail": detail}
    with pytest.raises(InvalidInputError, match="has no detail.bucket.name or detail.object.key"):
        resolve_run(event, "up", START, settings, boto3.client("s3", region_name=REGION))


# Wrong JSON types are refused as the documented types, not coerced.
@pytest.mark.parametrize(
    ("execution_input", "says"),
    [
        ({"k": "3"}, "k: Input should be a valid integer"),
        ({"k": 3.0}, "k: Input should be a valid integer"),
        ({"standardize": "yes"}, "standardize: Input should be a valid boolean"),
        ({"seed": True}, "seed: Input should be a valid integer"),
        ({"testFraction": "0.2"}, "testFraction: Input should be a valid number"),
        ({"approval": 1}, "approval: Input should be a valid boolean"),
    ],
)
def test_wrong_json_types_are_refused_not_coerced(settings, execution_input, says):
    with pytest.raises(InvalidInputError, match=says):
        resolve_run({"dataKey": "incoming/a.csv", **execution_input}, "t", START, settings, None)


# Found on the way: the first problem in reading order is the one named, whatever kind it is.
def test_a_bad_value_before_a_bad_byte_in_the_same_block_is_the_one_named(settings):
    text = b"a,b\n1,2\n3,x\n" + b"4,\xff\n" + b"5,6\n" * 10
    assert refused(settings, text).startswith("line 3, column b: 'x' is not a number")


def test_within_a_row_the_leftmost_bad_column_is_named(settings):
    text = "a,b,c\n" + "1,2,3\n4,5,6\n" * 5 + "x,2,y\n"
    assert refused(settings, text, featureColumns=["c", "a"]).startswith("line 12, column a: 'x' is not a number")
