"""tools/bench.py's pure parts: data generation, the cache, goal and projection arithmetic, history counting (no big runs)."""

from __future__ import annotations

import csv
import io
import math
import sys

import numpy as np
import pytest

from tools import bench


def test_rows_are_formatted_as_python_formats_them():
    codes = np.array([1, 5, 3, 2, 4])
    cents = np.array([0, 5, 123456, 99_999_999_99, 1000])
    expected = "".join(f"{c},{v / 100:.2f}\n" for c, v in zip(codes.tolist(), cents.tolist()))
    assert bench.format_rows(codes, cents).decode() == expected
    assert bench.format_rows(np.array([], dtype=int), np.array([], dtype=np.int64)) == b""
    with pytest.raises(ValueError):
        bench.format_rows(np.array([1]), np.array([10**10]))


def test_a_block_parses_as_the_sample_data_does():
    rows = list(csv.reader(io.StringIO(bench.block(np.random.default_rng(1), 5000).decode())))
    assert len(rows) == 5000 and all(len(r) == 2 for r in rows)
    assert {int(code) for code, _ in rows} == {1, 2, 3, 4, 5}
    assert all(
        float(amount) >= 0 and amount.split(".")[1].isdigit() and len(amount.split(".")[1]) == 2 for _, amount in rows
    )
    atm = [float(a) for code, a in rows if code == "2"]
    assert sum(a % 20 == 0 for a in atm) >= 0.9 * len(atm)  # withdrawals are multiples of $20, anomalies aside


def test_the_dataset_is_generated_once_and_again_when_incomplete(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(bench, "BLOCK_ROWS", 1000)
    path = bench.dataset(2500)
    lines = path.read_bytes().splitlines()
    assert lines[0] == b"tranCode,Amount" and len(lines) == 2501
    stamp = path.stat().st_mtime_ns
    assert bench.dataset(2500).stat().st_mtime_ns == stamp
    with path.open("ab") as f:  # a truncated or altered file no longer matches its marker
        f.write(b"1,2.00\n")
    assert len(bench.dataset(2500).read_bytes().splitlines()) == 2501


def result(rate: float, peak_mb: float, rows: int = 10, out_bytes: int = 100, in_bytes: int = 125) -> dict:
    return {"rate": rate, "peak_mb": peak_mb, "in_bytes": in_bytes, "out_bytes": out_bytes, "seconds": rows / rate}


def test_goals_compare_core_with_polars_and_the_seed_and_the_core_with_itself():
    results = {
        "text": {
            10: {"polars": result(5e6, 400), "seed": result(4e5, 2000), "core": result(6e6, 100)},
            40: {"polars": result(5e6, 800), "seed": result(5e5, 6000), "core": result(4e6, 120)},
        }
    }
    checks = {what: (measured, met) for what, measured, _, met in bench.goals(results)}
    assert checks["rows/s core/polars, text, 10 rows"] == ("1.20x", True)
    assert checks["rows/s core/polars, text, 40 rows"] == ("0.80x", False)
    assert checks["peak RSS core/polars, text, 10 rows"] == ("25%", True)
    assert checks["peak RSS core/polars, text, 40 rows"] == ("15%", True)
    assert checks["rows/s core/seed, text, 10 rows"] == ("15.0x", True)
    assert checks["rows/s core/seed, text, 40 rows"] == ("8.0x", False)
    assert checks["core peak RSS 40 / 10 rows, text"] == ("1.20", False)
    assert bench.goals({"text": {10: {"core": result(1, 1)}}}) == []  # one tool, one size: nothing to compare


@pytest.mark.parametrize("kind", bench.FILES)
def test_every_bench_file_is_csv_with_its_header_and_numeric_features(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(bench, "BLOCK_ROWS", 700)
    rows = list(csv.DictReader(io.StringIO(bench.dataset(2000, kind).read_text(encoding="utf-8"))))
    assert len(rows) == 2000
    assert all(float(row[name]) == float(row[name]) for row in rows for name in bench.FEATURES[kind])
    if kind == "text":
        assert len({row["txnId"] for row in rows}) == 2000
        assert any("," in row["merchant"] for row in rows) and any('"' in row["merchant"] for row in rows)
        assert all(len(row["date"]) == 10 and row["date"][4] == "-" for row in rows)


def test_the_bad_file_has_a_value_that_is_no_number_mid_file(tmp_path):
    rows = list(csv.DictReader(io.StringIO(bench.bad_file("numeric8", tmp_path, rows=100).read_text())))
    assert [i for i, row in enumerate(rows) if row["Amount"] == "abc"] == [49]


@pytest.mark.parametrize("approach", ["core", "copy"])
def test_a_child_measures_a_tool_on_a_small_file(approach, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "CACHE", tmp_path / "cache")
    path = bench.dataset(3000, "text")
    out = tmp_path / "out"
    out.mkdir()
    measured = bench.child(approach, str(path), str(out), bench.FEATURES["text"])
    assert measured["train_rows"] + measured["test_rows"] == 3000 and measured["peak_kb"] > 0


def test_a_tool_runs_in_the_interpreter_its_environment_variable_names(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "CACHE", tmp_path / "cache")
    path = bench.dataset(3000, "numeric2")
    marker = tmp_path / "ran"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    monkeypatch.setenv("BENCH_PYTHON_COPY", str(python))
    measured = bench.measure("copy", path, 3000, bench.FEATURES["numeric2"])
    assert marker.exists() and measured["train_rows"] == 3000


def test_projection_uses_the_largest_run_and_extends_memory_growth():
    flat = {
        10_000_000: result(2e6, 100, out_bytes=80_000_000),
        40_000_000: result(1e6, 90, out_bytes=320_000_000, in_bytes=400_000_000),
    }
    time_, with_s3, memory = bench.projection(flat)
    assert time_[3] and time_[1].startswith("100 s")
    # 100 M rows: 1,000 MB in and 800 MB out at the assumed 50 MB/s add 36 s.
    assert with_s3[1].startswith("136 s (1,000 MB read + 800 MB written") and with_s3[3]
    assert memory[1].startswith("90 MB") and memory[3]
    growing = {10_000_000: result(1e5, 100), 40_000_000: result(1e5, 1300)}  # 40 MB per million rows
    time_, _, memory = bench.projection(growing)
    assert not time_[3]  # 1,000 s
    assert memory[1].startswith("3,700 MB") and not memory[3]


def history_events() -> list[dict]:
    def entered(name):
        return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}}

    def invoke():
        return {"type": "TaskScheduled", "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke"}}

    events = [{"type": "ExecutionStarted"}, entered("Plan the data ranges"), invoke(), {"type": "TaskSucceeded"}]
    for _ in range(3):
        events += [entered("Wait for tuning"), entered("Check tuning job"), invoke(), entered("Has tuning finished?")]
    for _ in range(2):
        events += [
            entered("Wait for endpoint"),
            entered("Check endpoint"),
            {"type": "LambdaFunctionScheduled"},
            entered("Is the endpoint in service?"),
        ]
    return events + [entered("Model deployed"), {"type": "ExecutionSucceeded"}]


def test_history_is_split_into_fixed_cost_and_poll_rounds():
    summary = bench.summarize(bench.count_history(history_events()))
    assert summary["total"] == {"transitions": 17, "lambdas": 6, "events": 26}
    assert summary["loops"]["tuning"] == {"transitions": 9, "lambdas": 3, "events": 12, "rounds": 3}
    assert summary["loops"]["endpoint"] == {"transitions": 6, "lambdas": 2, "events": 8, "rounds": 2}
    assert summary["fixed"] == {"transitions": 2, "lambdas": 1, "events": 6}
    rounds, transitions, lambdas = bench.real_run(summary, 60)
    expected = math.ceil(30 * 60 / 60) + math.ceil(8 * 60 / 60)
    assert (rounds, transitions, lambdas) == (expected, 2 + 3 * expected, 1 + expected)
