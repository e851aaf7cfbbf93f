"""Hostile input through the offline runner: each bad file or input ends the run with a cause that names the
problem (and the line and column where there is one), and the raw object stays byte-identical."""

from __future__ import annotations

import gzip
import json

import pytest

from offline.runner import OfflineAWS
from testkit.stacks import FAST, GOOD

pytestmark = pytest.mark.slow  # whole executions with the real handlers

# gateTolerancePercent 1000: these runs are about deployment mechanics, so a later run always replaces the model
# (tests/workflow/test_evaluation.py covers the quality gate itself).


@pytest.fixture(scope="module")
def stack():
    with OfflineAWS(parameters={"MaxInputMegabytes": "1"}) as aws:
        yield aws


def body_of(aws, key):
    return aws.client("s3").get_object(Bucket=aws.bucket, Key=key)["Body"].read()


def run_on(aws, name, data: bytes, **overrides):
    key = f"incoming/{name}.csv"
    aws.upload(data, key)
    result = aws.run({"dataKey": key, **FAST, **overrides}, name=name, timeout=120)
    assert body_of(aws, key) == data, "the raw object changed"
    return result


@pytest.mark.parametrize(
    ("name", "data", "error", "says"),
    [
        ("empty", b"", "DataValidationError", "the object is empty"),
        ("header-only", b"tranCode,Amount\n", "DataValidationError", "header but no data rows"),
        (
            "missing-column",
            b"tranCode,Value\n1,2\n",
            "DataValidationError",
            "feature column(s) Amount not in the header",
        ),
        (
            "non-numeric",
            GOOD.replace("2,15.5", "2,abc", 1).encode(),
            "DataValidationError",
            "line 3, column Amount: 'abc' is not a number",
        ),
        (
            "nan",
            (GOOD + "1,NaN\n").encode(),
            "DataValidationError",
            "line 302, column Amount: 'NaN' is not a finite number",
        ),
        (
            "infinity",
            (GOOD + "1,-inf\n").encode(),
            "DataValidationError",
            "line 302, column Amount: '-inf' is not a finite number",
        ),
        ("ragged", (GOOD + "1,2,3\n").encode(), "DataValidationError", "line 302: 3 fields, but the header has 2"),
        ("semicolons", b"tranCode;Amount\n1;2\n", "DataValidationError", "not comma-separated"),
        ("fewer-than-k", b"tranCode,Amount\n1,2\n2,3\n", "DataValidationError", "at least k=3"),
        ("duplicate-columns", b"Amount,Amount\n1,2\n", "DataValidationError", "names Amount more than once"),
        ("too-big", b"tranCode,Amount\n" + b"1,2.5\n" * 200_000, "DataValidationError", "accepts at most 1,048,576"),
        ("broken-gzip", gzip.compress(GOOD.encode(), mtime=0)[:-30], "DataValidationError", "gzip"),
    ],
)
def test_bad_data_fails_naming_the_problem_and_leaves_the_raw_object_alone(stack, name, data, error, says):
    overrides = {"featureColumns": ["tranCode", "Amount"]}
    result = run_on(stack, name, data, **overrides)
    assert result.status == "FAILED"
    assert result.error == error
    # The plan reads the header (and the size, and a small gzip's start); the rows' problems are the merge's.
    planned = {"empty", "missing-column", "semicolons", "duplicate-columns", "too-big", "broken-gzip"}
    step = "Plan the data ranges" if name in planned else "Merge the ranges"
    assert result.cause.startswith(f"{step} failed: "), result.cause
    assert says in result.cause


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("crlf", GOOD.replace("\n", "\r\n").encode()),
        ("bom", ("\ufeff" + GOOD).encode()),
        ("no-final-newline", GOOD.rstrip("\n").encode()),
        ("gzipped", gzip.compress(GOOD.encode(), mtime=0)),
    ],
)
def test_files_a_user_would_call_fine_work(stack, name, data):
    result = run_on(stack, name, data)
    assert result.status == "SUCCEEDED", result.cause
    dataset = result.output["dataset"]
    assert dataset["trainRows"] + dataset["testRows"] == 300
    assert dataset["featureColumns"] == ["tranCode", "Amount"]


@pytest.mark.parametrize(
    ("execution_input", "says"),
    [
        ({"dataKey": "incoming/x.csv", "colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"dataKey": "incoming/x.csv", "k": "eight"}, "k: Input should be a valid integer"),
        ({"dataKey": "incoming/x.csv", "k": 0}, "k: Input should be greater than or equal to 2"),
        ({"dataKey": "incoming/x.csv", "k": 5000}, "k: Input should be less than or equal to 1000"),
        ({"dataKey": 42}, "dataKey: Input should be a valid string"),
    ],
)
def test_bad_execution_input_fails_naming_the_field(stack, execution_input, says):
    result = stack.run(execution_input, name=f"input-{abs(hash(json.dumps(execution_input)))}")
    assert result.status == "FAILED" and result.error == "InvalidInputError"
    assert result.cause.startswith("Resolve run configuration failed: Invalid execution input: ")
    assert says in result.cause


def test_a_key_that_does_not_exist_is_named(stack):
    result = stack.run({"dataKey": "incoming/nowhere.csv", **FAST}, name="no-such-key")
    assert result.status == "FAILED" and result.error == "SourceObjectError"
    assert "incoming/nowhere.csv does not exist" in result.cause
