"""Issue 17, the demo's door (`make demo ARGS=...`): what it refuses before anything runs (as argparse's usage
error, exit 2, never a traceback), and how runs that fail on the data end: exit 1, the demo's own Error and Cause,
no internal dump of the offline interpreter (unless --verbose)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from offline.__main__ import main
from offline.runner import EXECUTION_INPUT_MAX_BYTES, OfflineAWS

FAST = {"maxTrainingJobs": 2, "maxParallelTrainingJobs": 2, "k": 2, "pollSeconds": 0}
DUMP = "Exception=FailureEventException"


def refused_at_the_door(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# 4. Non-standard JSON (NaN, Infinity) is refused, as Step Functions refuses it, not dropped.
@pytest.mark.parametrize("text", ['{"k": Infinity}', '{"testFraction": NaN}', '{"k": -Infinity}'])
def test_4_nan_and_infinity_in_the_input_are_refused(text, capsys):
    err = refused_at_the_door(["--input", text], capsys)
    assert "argument --input:" in err and "is not standard JSON, and Step Functions refuses it" in err


# 13. An input that is not a JSON object is refused with what it is.
@pytest.mark.parametrize(
    ("text", "kind"), [("[1,2]", "an array"), ("null", "null"), ("5", "a number"), ('"k"', "a string")]
)
def test_13_an_input_that_is_not_an_object_is_refused(text, kind, capsys):
    err = refused_at_the_door(["--input", text], capsys)
    assert f"""argument --input: expected a JSON object such as '{{"k": 5}}', got {kind}""" in err


# 14. A sample of fewer than 10 rows is refused, not a ValueError traceback.
@pytest.mark.parametrize("rows", ["0", "5", "-3", "many"])
def test_14_too_few_sample_rows_are_refused(rows, capsys):
    err = refused_at_the_door(["--rows", rows], capsys)
    assert "argument --rows:" in err and ("at least 10 rows" in err or "not a whole number" in err)


# Execution names as Step Functions validates them, and an input over 256 KiB as StartExecution refuses it.
@pytest.mark.parametrize(("name", "says"), [("my run", "holds ' '"), ("x" * 81, "81 characters"), ("a/b", "holds '/'")])
def test_a_name_step_functions_refuses_is_refused(name, says, capsys):
    err = refused_at_the_door(["--name", name], capsys)
    assert "argument --name:" in err and says in err


def test_a_name_too_long_once_the_demo_adds_its_suffix_is_refused(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    name = "x" * 79  # fine alone; "-1" makes it 81
    assert main(["--data", str(tmp_path / "a.csv"), "--name", name, "--concurrent", "3"]) == 2
    assert f"the execution name '{name}-1' would be refused: it has 81 characters" in capsys.readouterr().err


def test_an_input_over_256_kib_is_refused_at_start(tmp_path, capsys):
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    big = json.dumps({"featureColumns": ["a" * 1000] * 300})
    assert main(["--data", str(tmp_path / "a.csv"), "--input", big]) == 2
    err = capsys.readouterr().err
    assert "StartExecution refuses it" in err and "ValidationException" in err
    assert f"less than or equal to {EXECUTION_INPUT_MAX_BYTES}" in err


@pytest.mark.slow  # deploys the offline stack
def test_the_offline_runner_refuses_what_start_execution_refuses():
    with OfflineAWS() as aws:
        for execution_input, name, code in [
            ({"k": float("nan")}, "nan-input", "InvalidExecutionInput"),
            ({}, "with space", "InvalidName"),
            ({}, "x" * 81, "ValidationException"),
            ({"dataKey": "x" * EXECUTION_INPUT_MAX_BYTES}, "too-big", "ValidationException"),
        ]:
            with pytest.raises(ClientError) as caught:
                aws.start(execution_input, name)
            assert caught.value.response["Error"]["Code"] == code
        assert aws.executions() == []  # nothing started


# Runs that fail on the data: exit 1 with the data step's cause, and no interpreter dump on stderr.
def run_demo(tmp_path, csv_text: str, overrides: dict, capsys, *extra: str) -> tuple[int, dict, str]:
    path = tmp_path / "in.csv"
    path.write_text(csv_text)
    argv = ["--data", str(path), "--json", "--output", str(tmp_path / "out"), "--input", json.dumps(overrides)]
    code = main([*argv, *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def varied(rows: int = 300) -> str:
    return "".join(f"{i % 3},{10 + (i * 7) % 23}.5\n" for i in range(rows))


@pytest.mark.slow  # whole executions through the demo
@pytest.mark.parametrize(
    ("case", "csv_text", "overrides", "says"),
    [
        # 5: SageMaker reads float32; a value beyond it used to fail at tuning with an internal error.
        ("5", "code,amount\n" + varied() + "1,1e39\n", {}, "line 302, column amount: '1e39' is beyond float32's range"),
        # 9: all rows identical used to deploy, then end the demo with a ZeroDivisionError.
        ("9", "a,b\n" + "1.5,2\n" * 300, {}, "all 300 data rows hold the same feature values (a=1.5, b=2)"),
        # 12: a stratify column of unique values.
        (
            "12",
            "id,code,amount\n" + "".join(f"t{i},{line}" for i, line in enumerate(varied().splitlines(True))),
            {"stratifyColumn": "id", "featureColumns": ["code", "amount"]},
            "stratifyColumn id: none of its 300 values has the 3 rows a value needs",
        ),
        # 17: CR line endings.
        ("17", "code,amount\r" + varied().replace("\n", "\r"), {}, "the file uses CR line endings"),
    ],
)
def test_a_run_that_fails_on_the_data_ends_with_its_cause_and_no_dump(
    case, csv_text, overrides, says, tmp_path, capsys
):
    code, result, err = run_demo(tmp_path, csv_text, {**FAST, **overrides}, capsys)
    assert code == 1 and result["status"] == "FAILED" and result["error"] == "DataValidationError", err
    assert says in result["cause"] and result["demoError"] is None
    assert "Traceback" not in err and DUMP not in err  # 16: the user sees the demo's own lines only
    assert err.rstrip().splitlines()[-2:] == [f"Error: {result['error']}", f"Cause: {result['cause']}"]


@pytest.mark.slow  # a whole execution through the demo
def test_16_verbose_shows_the_interpreter_s_dump(tmp_path, capsys):
    code, result, err = run_demo(tmp_path, "a,b\n" + "1.5,2\n" * 300, FAST, capsys, "--verbose")
    assert code == 1 and result["error"] == "DataValidationError"
    assert DUMP in err


# 8 (and 1): raw nanosecond timestamps beside a category column, and tiny ratios beside a billion, run through.
@pytest.mark.slow  # a whole execution through the demo
def test_8_raw_timestamps_beside_a_category_column_run_through(tmp_path, capsys):
    rows = "".join(
        f"{i % 3},{1_733_500_000_000_000_000 + 97_000_000 * i},{(0.25, 0.75, 1e9)[i % 3]}\n" for i in range(300)
    )
    overrides = {**FAST, "standardize": False, "treatments": {"code": "category"}}
    code, result, err = run_demo(tmp_path, "code,ts,ratio\n" + rows, overrides, capsys)
    assert code == 0 and result["status"] == "SUCCEEDED", err
    assert result["output"]["dataset"]["featureDim"] == 5  # three levels of code, ts, ratio
