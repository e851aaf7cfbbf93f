"""`make demo`'s report: the table, the scores of the sample, recall and precision of the injected anomalies, the
picture, and the runner's --approve / --reject, end to end through the offline stack."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_pipeline.data.split import split_stream
from kmeans_pipeline.data.treatment import encode
from kmeans_pipeline.model.scoring import score
from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment
from offline import report_view
from offline.__main__ import build_parser, main, outcome_line, summary
from offline.runner import ExecutionResult
from offline.sample_data import generate
from testkit.reports import evaluation_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def z_scored(mean: list[float], std: list[float]) -> FeatureTreatment:
    return FeatureTreatment(
        columns=[
            ColumnTreatment(column=c, kind="numeric", standardize=True, mean=m, std=s)
            for c, m, s in zip(["tranCode", "Amount"], mean, std)
        ]
    )


def hand_made_report(treatment: FeatureTreatment | None = None) -> dict:
    report = evaluation_report(
        [[1.0, 45.0], [4.0, 2500.0]], treatment=treatment, per_cluster=[10.25, 40.0], overall=35.5
    )
    report["clusters"][0].update(
        size=900, share=0.9, distance={"p50": 2.0, "p90": 5.0, "p95": 7.0, "p99": 10.25, "p999": 11.0, "max": 12.0}
    )
    report["clusters"][1].update(
        size=100, share=0.1, distance={"p50": 20.0, "p90": 30.0, "p95": 35.0, "p99": 40.0, "p999": 41.0, "max": 1234.5}
    )
    report["distance"] = {"p50": 2.5, "p90": 15.0, "p95": 25.0, "p99": 35.5, "p999": 40.5, "max": 1234.5}
    return report


# ------------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------------


def test_report_table_shows_clusters_thresholds_flagged_shares_gate_and_headline():
    table = report_view.report_table(hand_made_report())
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("cluster"))
    for column in ("size", "share", "tranCode", "Amount", "p50 dist", "p99 dist", "threshold"):
        assert column in header
    start = lines.index(header)
    grid = lines[start : start + 5]  # header, rule, two clusters, the overall row
    assert set(grid[1]) <= {"-", " "}
    # Right-aligned columns: every row of the grid ends where the header does.
    assert {len(line) for line in grid} == {len(header)}
    cluster0, cluster1, overall = grid[2:]
    assert cluster0.split()[:3] == ["0", "900", "90.00%"] and cluster0.split()[-1] == "10.25"
    assert cluster1.split()[:5] == ["1", "100", "10.00%", "4.00", "2,500"] and cluster1.split()[-1] == "40.00"
    assert "1,234" in cluster1  # max distance, thousands separated
    assert overall.split()[0] == "all" and overall.split()[-1] == "35.50"
    assert "p999 40.50" in table
    assert "10 of 1,000 test records (1.00%) beyond their cluster's threshold" in table
    assert "Gate: KEEP" in table and "serving model's 10.00" in table and "tolerance 5%" in table
    assert "Headline: keep: the serving model kmeans-dev-old keeps serving." in table
    # Each column's treatment.
    assert "  tranCode: numeric (requested)" in table and "  Amount: numeric (requested)" in table
    assert "distances and thresholds in the model's" in table


def test_report_table_marks_small_clusters_and_says_where_their_records_are_counted():
    report = hand_made_report()
    report["clusters"][1].update(small=True, closestShare=0.1, size=0, share=0.0, threshold=None)
    report["clusters"][0].update(small=False, closestShare=0.9, size=1000, share=1.0)
    table = report_view.report_table(report)
    rows = [line.split() for line in table.splitlines()]
    assert ["1", "(small)", "0", "0.00%"] in [row[:4] for row in rows]
    assert "The 10.00% of test records closest to the small cluster(s) 1 are scored against the nearest large" in table
    assert "Small clusters" not in report_view.report_table(hand_made_report())


def test_report_table_says_how_each_column_became_features():
    table = report_view.report_table(hand_made_report(z_scored([2.0, 500.0], [1.0, 900.0])))
    assert "  tranCode: numeric, z-scored (requested)" in table and "  Amount: numeric, z-scored (requested)" in table
    report = hand_made_report()
    report["treatment"], report["featureNames"], report["modelCentroids"] = (
        {
            "columns": [
                {
                    "column": "tranCode",
                    "kind": "category",
                    "levels": [1, 4],
                    "decided": "auto",
                    "reason": "2 distinct whole numbers",
                },
                {
                    "column": "Amount",
                    "kind": "log",
                    "standardize": True,
                    "mean": 5.0,
                    "std": 1.5,
                    "decided": "auto",
                    "reason": "a long right tail",
                },
            ]
        },
        ["tranCode=1", "tranCode=4", "log1p(Amount)"],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]],
    )
    table = report_view.report_table(report)
    assert "  tranCode: category, one-hot over 2 levels (auto: 2 distinct whole numbers)" in table
    assert "  Amount: log1p, z-scored (auto: a long right tail)" in table


def test_report_table_says_a_column_of_one_value_is_centred_not_z_scored():
    """Issue 17, defect 2: a standard deviation of 0 scales nothing, and the report said "z-scored" anyway."""
    table = report_view.report_table(hand_made_report(z_scored([2.0, 500.0], [0.0, 900.0])))
    assert "  tranCode: numeric, centred only (its training values are all equal: std 0) (requested)" in table
    assert "  Amount: numeric, z-scored (requested)" in table


# ------------------------------------------------------------------------------------------------------------
# Scoring and the injected anomalies
# ------------------------------------------------------------------------------------------------------------


def test_anomaly_lines_are_file_lines_and_map_to_data_rows(tmp_path):
    sample = generate(tmp_path, rows=2000)
    file_lines = sample.csv_path.read_text().splitlines()
    X = report_view.read_features(sample.csv_path, ["tranCode", "Amount"])
    assert len(X) == sample.rows == len(file_lines) - 1
    for line in sample.anomaly_lines:
        code, amount = file_lines[line - 1].split(",")  # 1-based file line numbers, the header is line 1
        assert X[line - 2].tolist() == [float(code), float(amount)]  # data row line - 2

    rows = [line - 2 for line in sample.anomaly_lines]
    assert report_view.recall_precision(set(rows), sample.anomaly_lines) == (1.0, 1.0)
    mask = np.zeros(sample.rows, dtype=bool)
    mask[rows] = True
    assert report_view.recall_precision(mask, sample.anomaly_lines) == (1.0, 1.0)
    assert report_view.recall_precision(np.array(rows), sample.anomaly_lines) == (1.0, 1.0)
    # The off-by-one mappings catch nothing (anomalies are never on adjacent rows here).
    assert report_view.recall_precision({r + 1 for r in rows}, sample.anomaly_lines)[0] < 0.2
    # Half of them, plus as many ordinary rows: recall 1/2, precision 1/2.
    half = rows[: len(rows) // 2]
    ordinary = [r for r in range(sample.rows) if r not in rows][: len(half)]
    recall, precision = report_view.recall_precision(set(half + ordinary), sample.anomaly_lines)
    assert recall == pytest.approx(len(half) / len(rows)) and precision == pytest.approx(0.5)
    recall, precision = report_view.recall_precision(set(), sample.anomaly_lines)
    assert recall == 0.0 and math.isnan(precision)
    with pytest.raises(ValueError):
        report_view.recall_precision({0}, [1])  # line 1 is the header


def test_anomaly_scores_take_columns_by_name_and_apply_the_standardisation(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("Amount,other,tranCode\n45,x,1\n2500,y,4\n\n9000,z,1\n")
    X = report_view.read_features(path, ["tranCode", "Amount"])
    assert X.tolist() == [[1, 45], [4, 2500], [1, 9000]]

    plain = hand_made_report()
    closest, distance, flagged = report_view.anomaly_scores(path, plain, np.array(plain["centroids"], dtype=np.float32))
    assert closest.tolist() == [0, 1, 1] and flagged.tolist() == [False, False, True]
    assert distance[0] == 0

    treatment = z_scored([2.0, 500.0], [1.5, 900.0])
    report = hand_made_report(treatment)
    centroids = encode(treatment, report["centroids"])[0].astype(np.float32)
    closest, distance, flagged = report_view.anomaly_scores(path, report, centroids)
    expected_closest, expected_distance = score(encode(treatment, X)[0].astype(np.float32), centroids)
    assert closest.tolist() == expected_closest.tolist()
    np.testing.assert_array_equal(distance, expected_distance)
    # Without the artifact, the report's own centroids in the model's units (modelCentroids) stand in.
    _, from_report, _ = report_view.anomaly_scores(path, report, None)
    np.testing.assert_allclose(from_report, expected_distance, rtol=1e-5)


def test_save_picture_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    report = hand_made_report()
    X = np.column_stack([rng.integers(1, 6, 3000), rng.lognormal(4, 1, 3000)])
    closest, distance, flagged = report_view.anomaly_scores(None, report, None, X=X)
    anomalies = np.zeros(len(X), dtype=bool)
    anomalies[::300] = True
    path = report_view.save_picture(
        tmp_path / "out" / "report.png", report, X, closest, distance, flagged, anomalies=anomalies
    )
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


# ------------------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------------------


def test_approve_and_reject_exclude_each_other(capsys):
    assert build_parser().parse_args(["--approve"]).approve is True
    assert build_parser().parse_args(["--reject"]).approve is False
    assert build_parser().parse_args([]).approve is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--approve", "--reject"])


def test_a_kept_run_says_so(capsys):
    gate = {
        "decision": "keep",
        "reason": "test MSD 12 against the serving model's 10",
        "servingModel": "kmeans-dev-old",
    }
    output = {
        "outcome": "kept",
        "tuningJob": "t",
        "trainingJobs": {"completed": 2},
        "bestTrainingJob": {"trainingJobName": "t-1", "testMsd": 12.0, "hyperparameters": {"k": "5"}},
        "evaluation": {"gate": gate},
        "endpoint": "kmeans-dev",
    }
    result = ExecutionResult(
        name="demo", arn="arn", status="SUCCEEDED", output=output, error=None, cause=None, seconds=1.0
    )
    import sys

    summary(result, sys.stdout)
    printed = capsys.readouterr().out
    assert "KEPT" in printed and "kmeans-dev-old keeps serving endpoint kmeans-dev" in printed
    assert gate["reason"] in printed
    assert outcome_line(result, None).startswith("Outcome: KEPT")


SMALL = ["--rows", "4000", "--input", json.dumps({"maxTrainingJobs": 2, "k": 5})]


@pytest.mark.slow  # runs the demo: whole executions
def test_the_demo_ends_with_the_report(tmp_path, capsys):
    assert main([*SMALL, "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report_part = out.split("== Evaluation report (s3://", 1)[1]
    assert "cluster" in report_part and "tranCode" in report_part and "threshold" in report_part
    assert "Gate: PROMOTE" in report_part and "Headline: promote" in report_part
    assert "The 20 injected anomalies:" in report_part
    # Every record is scored against the overall threshold: the demo says so once, not once more per cluster.
    assert "at their cluster's thresholds" not in report_part and "at the overall threshold:" in report_part
    assert "beyond their cluster's threshold" not in report_part
    assert "precision" in report_part
    assert "Outcome: DEPLOYED" in report_part
    assert out.rstrip().endswith(f"Picture: {tmp_path / 'report.png'}")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["schemaVersion"] == 2 and report["k"] == 5 and report["featureColumns"] == ["tranCode", "Amount"]
    assert "average precision:" in report_part and "ranked by distance" in report_part
    assert "The scoring API answers (tranCode,Amount" in out
    assert (tmp_path / "report.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow  # runs the demo: whole executions
def test_reject_ends_the_run_without_deploying(tmp_path, capsys):
    assert main([*SMALL, "--output", str(tmp_path), "--reject", "--json"]) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # --json: stdout holds the JSON object only
    assert result["status"] == "FAILED" and result["error"] == "ModelRejected"
    assert "rejected by offline runner: rejected by --reject" in result["cause"]
    assert result["endpoint"]["status"] is None  # nothing was deployed
    assert result["report"]["injectedAnomalies"]["count"] == 20
    assert '"approval": true' in captured.err
    assert "Outcome: REJECTED at approval" in captured.err
    assert captured.err.rstrip().splitlines()[-2:] == ["Error: ModelRejected", f"Cause: {result['cause']}"]
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.png").exists()


# ------------------------------------------------------------------------------------------------------------
# Your own data: the demo reads it the way the data step does
# ------------------------------------------------------------------------------------------------------------

FAST_OWN = {"maxTrainingJobs": 2, "maxParallelTrainingJobs": 2, "k": 2, "pollSeconds": 0}
COMPLETE = {"status", "error", "cause", "execution", "resources", "output", "endpoint", "report", "executions"}


def transactions(rows: int = 200, seed: int = 0) -> list[tuple[float, int]]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(1, 4, rows)
    return [(round(float(rng.lognormal(2 + code, 0.3)), 2), int(code)) for code in codes]


def run_demo(tmp_path, csv_bytes: bytes, overrides: dict, capsys) -> tuple[int, dict, str]:
    path = tmp_path / "own.csv"
    path.write_bytes(csv_bytes)
    code = main(["--data", str(path), "--json", "--output", str(tmp_path / "out"), "--input", json.dumps(overrides)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


OWN_CSVS = {
    "a byte-order mark": lambda rows: "\ufeffAmount,tranCode\n" + "".join(f"{a},{c}\n" for a, c in rows),
    "quoted header names": lambda rows: '"Amount","tranCode"\r\n' + "".join(f"{a},{c}\r\n" for a, c in rows),
    "text columns that are not features": lambda rows: (
        "id,Amount,merchant,tranCode\n"
        + "".join(f'tx-{i},{a},"Shop {i % 7}, Inc",{c}\n' for i, (a, c) in enumerate(rows))
    ),
}


@pytest.mark.slow  # runs the demo: whole executions
@pytest.mark.parametrize("case", sorted(OWN_CSVS))
def test_the_demo_scores_your_own_csv_the_way_the_data_step_read_it(case, tmp_path, capsys):
    rows = transactions()
    overrides = {**FAST_OWN, "featureColumns": ["Amount", "tranCode"]}
    code, result, err = run_demo(tmp_path, OWN_CSVS[case](rows).encode(), overrides, capsys)
    assert code == 0, err
    assert "Traceback" not in err and result["demoError"] is None
    assert result["status"] == "SUCCEEDED" and COMPLETE <= set(result)
    assert result["report"]["records"]["scored"] == len(rows)
    # The examples are the CSV's own first records, feature columns in the model's order, sent to the endpoint.
    for line, (amount, code_) in zip((2, 3, 4), rows):
        assert f"line {line:<7} {amount:g},{code_}" in err
    assert (tmp_path / "out" / "report.png").exists()


@pytest.mark.slow  # runs the demo: whole executions
def test_a_failed_execution_ends_with_its_error_and_cause_and_exit_1(tmp_path, capsys):
    csv_text = "Amount,tranCode\n" + "".join(f"{a},{c}\n" for a, c in transactions(50))
    code, result, err = run_demo(tmp_path, csv_text.encode(), {"k": 1, "pollSeconds": 0}, capsys)
    assert code == 1 and "Traceback" not in err
    assert result["status"] == "FAILED" and result["error"] == "InvalidInputError"
    assert "k: Input should be greater than or equal to 2" in result["cause"]
    assert result["resources"] == {} and result["report"] is None and COMPLETE <= set(result)
    assert err.rstrip().splitlines()[-2:] == [f"Error: {result['error']}", f"Cause: {result['cause']}"]


@st.composite
def accepted_demo_csvs(draw):
    """Small CSVs the data step accepts, in the shapes users export: BOM, quoted names, CRLF, blank lines, text
    columns around the features, numbers written in several ways."""
    rows = transactions(draw(st.integers(40, 120)), seed=draw(st.integers(0, 2**16)))
    text_columns = draw(st.lists(st.sampled_from(["id", "merchant", "note"]), unique=True, max_size=2))
    header = draw(st.permutations(["Amount", "tranCode", *text_columns]))
    quote = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    style = draw(st.sampled_from(["{}", "{:.6e}", '"{}"']))
    lines = [",".join(f'"{n}"' if quote else n for n in header)]
    for i, (amount, code) in enumerate(rows):
        values = {
            "Amount": style.format(amount),
            "tranCode": str(code),
            "id": f"tx-{i}",
            "merchant": f'"Shop {i % 5}, ""Ltd"""',
            "note": "",
        }
        lines.append(",".join(values[n] for n in header))
        if draw(st.integers(0, 30)) == 0:
            lines.append("")
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + newline.join(lines) + newline).encode(), len(rows)


@pytest.mark.slow  # runs the demo: whole executions
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(case=accepted_demo_csvs())
def test_the_demo_runs_clean_on_csvs_the_data_step_accepts(case, tmp_path_factory, capsys):
    data, rows = case
    # Only CSVs the data step itself accepts (this raises on any other).
    split_stream([data], io.BytesIO(), io.BytesIO(), feature_columns=["Amount", "tranCode"], k=2)
    code, result, err = run_demo(
        tmp_path_factory.mktemp("own"), data, {**FAST_OWN, "featureColumns": ["Amount", "tranCode"]}, capsys
    )
    assert code == 0, err
    assert result["status"] == "SUCCEEDED" and COMPLETE <= set(result) and result["demoError"] is None
    assert result["report"]["records"]["scored"] == rows and result["report"]["picture"]
    assert result["resources"]["endpoint"] == [result["output"]["endpoint"]]
