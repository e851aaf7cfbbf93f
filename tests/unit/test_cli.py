"""The command line: export centroids, score a CSV (with and without a report), and its error messages."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

import kmeans_cli as cli
from kmeans_cli import main
from kmeans_pipeline.data.treatment import encode
from kmeans_pipeline.model.scoring import flag, score
from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment
from offline.standin.ndarray import write_model_tar_gz
from testkit.demo_model import build
from testkit.reports import evaluation_report

ROOT = Path(__file__).resolve().parents[2]
CENTROIDS = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]], dtype=np.float32)
HEADER_ROWS = [
    ["id", "tranCode", "note", "Amount"],
    ["a", "1", "x", "1"],
    ["b", "9", "has, a comma", "11.5"],
    ["c", "-14", "", "9"],
    ["d", "0.1", "y", "0.2"],
]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return path


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(write_model_tar_gz(CENTROIDS))
    return path


def report(**changes) -> dict:
    return evaluation_report(CENTROIDS.tolist(), per_cluster=[1.0, 2.0, None], overall=3.0, **changes)


def write_report(tmp_path: Path, body: dict | None = None, **changes) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report(**changes) if body is None else body))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------------------
# export-centroids
# ------------------------------------------------------------------------------------------------------------


def test_export_centroids_to_stdout_and_to_a_file(model, tmp_path, capsys):
    code, out, err = run(capsys, "export-centroids", model)
    assert code == 0 and err == ""
    assert json.loads(out) == {"k": 3, "featureDim": 2, "centroids": CENTROIDS.tolist()}
    code, out, _ = run(capsys, "export-centroids", model, "--out", tmp_path / "c.json")
    assert code == 0 and out == ""
    assert json.loads((tmp_path / "c.json").read_text())["centroids"] == CENTROIDS.tolist()


def test_model_and_report_from_s3(tmp_path, capsys):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="r1/model.tar.gz", Body=write_model_tar_gz(CENTROIDS))
        s3.put_object(Bucket="models", Key="r1/report.json", Body=json.dumps(report()).encode())
        assert main(["export-centroids", "s3://models/r1/model.tar.gz"]) == 0
        assert json.loads(capsys.readouterr().out)["k"] == 3
        # Missing key: one line, exit 2
        assert main(["export-centroids", "s3://models/r2/model.tar.gz"]) == 2
        err = capsys.readouterr().err
        assert err == (
            "python -m kmeans_cli: error: s3://models/r2/model.tar.gz does not exist (NoSuchKey): "
            "no model artifact at that key\n"
        )
        # The report from S3 too
        path = write_csv(tmp_path / "tx.csv", HEADER_ROWS)
        assert main(["score", "s3://models/r1/model.tar.gz", str(path), "--report", "s3://models/r1/report.json"]) == 0
        assert read_csv(capsys.readouterr().out)[0][-2:] == ["anomaly", "explanation"]
        assert main(["score", "s3://models/r1/model.tar.gz", str(path), "--report", "s3://models/r1/nope.json"]) == 2
        assert "report s3://models/r1/nope.json cannot be read (NoSuchKey)" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# score
# ------------------------------------------------------------------------------------------------------------


def test_score_without_a_report_uses_every_column(model, tmp_path, capsys):
    X = np.random.default_rng(1).normal(scale=8, size=(25, 2))
    rows = [[repr(float(v)) for v in row] for row in X]
    path = write_csv(tmp_path / "plain.csv", rows)
    code, out, err = run(capsys, "score", model, path, "--chunk-rows", 4)
    assert code == 0 and err == ""
    got = read_csv(out)
    closest, distance = score(X, CENTROIDS)
    assert [r[:2] for r in got] == rows  # no header in, none out
    assert [int(r[2]) for r in got] == closest.tolist()
    assert [r[3] for r in got] == [repr(float(d)) for d in distance]
    assert all(len(r) == 4 for r in got)  # no anomaly column without a report
    # With a header row (names, not numbers), it is written back with the new columns.
    write_csv(tmp_path / "named.csv", [["x", "y"], *rows])
    code, out, _ = run(capsys, "score", model, tmp_path / "named.csv")
    assert read_csv(out)[0] == ["x", "y", "closest_cluster", "distance_to_cluster"]
    assert read_csv(out)[1:] == got


def test_score_with_a_report_picks_features_by_name_and_flags_anomalies(model, tmp_path, capsys):
    path = write_csv(tmp_path / "tx.csv", HEADER_ROWS)
    code, out, err = run(capsys, "score", model, path, "--report", write_report(tmp_path), "--out", tmp_path / "o.csv")
    assert code == 0 and out == "" and err == ""
    got = read_csv((tmp_path / "o.csv").read_text())
    assert got[0] == HEADER_ROWS[0] + ["closest_cluster", "distance_to_cluster", "score", "anomaly", "explanation"]
    assert [r[:4] for r in got[1:]] == HEADER_ROWS[1:]  # every input column kept, quoting and all
    X = np.array([[float(r[1]), float(r[3])] for r in HEADER_ROWS[1:]])
    closest, distance = score(X, CENTROIDS)
    assert [int(r[4]) for r in got[1:]] == closest.tolist() == [0, 1, 2, 0]
    # Per-cluster thresholds [1, 2, and the overall 3 for cluster 2]: (1, 1) at 1.414 > 1, (9, 11.5) at 1.80 <= 2,
    # (-14, 9) at 5.66 > 3, (0.1, 0.2) at 0.22 <= 1.
    assert [r[7] for r in got[1:]] == ["true", "false", "true", "false"]
    want = flag(closest, distance, [1.0, 2.0, None], 3.0)
    assert [r[7] == "true" for r in got[1:]] == want.tolist()
    # The score is the distance over that threshold: above 1 exactly where the record is flagged.
    limits = np.array([1.0, 2.0, 3.0])[closest]
    np.testing.assert_allclose([float(r[6]) for r in got[1:]], distance / limits, rtol=1e-12)
    assert [float(r[6]) > 1 for r in got[1:]] == want.tolist()
    # A flagged row says why; this report has no normal ranges, so the feature with the largest part of the distance.
    assert [bool(r[8]) for r in got[1:]] == want.tolist()
    assert got[1][8].startswith("tranCode 1 with the record's other values")
    # --overall: the overall threshold (3) for every cluster.
    code, out, _ = run(capsys, "score", model, path, "--report", tmp_path / "report.json", "--overall")
    assert [r[7] for r in read_csv(out)[1:]] == ["false", "false", "true", "false"]


def test_a_record_closest_to_a_small_cluster_is_scored_against_the_nearest_other_one(model, tmp_path, capsys):
    path = write_csv(tmp_path / "tx.csv", HEADER_ROWS)
    small = evaluation_report(CENTROIDS.tolist(), per_cluster=[1.0, 2.0, None], overall=3.0, small=(2,))
    code, out, err = run(capsys, "score", model, path, "--report", write_report(tmp_path, small))
    assert code == 0 and err == ""
    got = read_csv(out)[1:]
    # The endpoint's answer is unchanged: (-14, 9) is closest to cluster 2, at 5.66.
    assert [int(r[4]) for r in got] == [0, 1, 2, 0]
    # But cluster 2 is no normal pattern: (-14, 9) is scored against cluster 0 (16.64 away, threshold 1), the
    # others as before.
    referred = float(np.hypot(-14, 9))
    np.testing.assert_allclose(
        [float(r[6]) for r in got], [np.sqrt(2) / 1, np.hypot(1, 1.5) / 2, referred / 1, np.hypot(0.1, 0.2)], rtol=1e-6
    )
    assert [r[7] for r in got] == ["true", "false", "true", "false"]


def test_a_report_without_thresholds_gives_no_anomaly_column(model, tmp_path, capsys):
    path = write_csv(tmp_path / "tx.csv", HEADER_ROWS)
    rep = write_report(tmp_path, evaluation_report(CENTROIDS.tolist()))
    code, out, _ = run(capsys, "score", model, path, "--report", rep)
    assert code == 0 and read_csv(out)[0][-1] == "distance_to_cluster"


def test_the_reports_treatment_is_applied_unless_the_csv_is_standardized(model, tmp_path, capsys):
    treatment = FeatureTreatment(
        columns=[
            ColumnTreatment(column="tranCode", kind="numeric", standardize=True, mean=100.0, std=10.0),
            ColumnTreatment(column="Amount", kind="numeric", standardize=True, mean=5.0, std=0.0),
        ]
    )
    rep = write_report(tmp_path, evaluation_report(CENTROIDS.tolist(), treatment=treatment))
    raw = np.array([[100.0, 5.0], [200.0, 15.0], [0.0, 10.0]])
    write_csv(tmp_path / "raw.csv", [["Amount", "tranCode"]] + [[repr(float(a)), repr(float(t))] for t, a in raw])
    code, out, _ = run(capsys, "score", model, tmp_path / "raw.csv", "--report", rep)
    assert code == 0
    closest, distance = score(encode(treatment, raw)[0].astype(np.float32), CENTROIDS)
    got = read_csv(out)[1:]
    assert [int(r[2]) for r in got] == closest.tolist() and [r[3] for r in got] == [repr(float(d)) for d in distance]
    code, out, _ = run(capsys, "score", model, tmp_path / "raw.csv", "--report", rep, "--standardized")
    assert [r[3] for r in read_csv(out)[1:]] == [repr(float(d)) for d in score(raw, CENTROIDS)[1]]


def test_a_headerless_csv_with_a_report_takes_the_columns_in_the_reports_order(model, tmp_path, capsys):
    write_csv(tmp_path / "channel.csv", [["1", "1"], ["9", "11.5"]])
    code, out, _ = run(capsys, "score", model, tmp_path / "channel.csv", "--report", write_report(tmp_path))
    assert code == 0 and [r[:3] for r in read_csv(out)] == [["1", "1", "0"], ["9", "11.5", "1"]]


def test_stdin_and_blank_lines(model, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kmeans_cli", "score", str(model), "-"],
        input=b"\xef\xbb\xbfa,b\n1,1\n\n10,10\n",
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "a,b,closest_cluster,distance_to_cluster",
        "1,1,0,1.4142135381698608",
        "10,10,1,0.0",
    ]


# ------------------------------------------------------------------------------------------------------------
# Errors: one line, exit code 2, no output file
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows,extra,message",
    [
        ([["1", "2"], ["3", "abc"]], [], "line 2, column 2 (column 2): 'abc' is not a number"),
        ([["x", "y"], ["1", "2"], ["", "2"]], [], "line 3, column 1 (x): '' is not a number"),
        ([["1", "2"], ["3", "nan"]], [], "line 2, column 2 (column 2): 'nan' is not a finite number"),
        ([["1", "2"], ["3"]], [], "line 2 has 1 columns, line 1 has 2"),
        ([["1", "2", "3"]], [], "has 3 columns, but the model has feature_dim 2"),
        (
            [["id", "tranCode", "Amount"], ["a", "1", "1e999"]],
            ["--report"],
            "line 2, column 3 (Amount): '1e999' is not a finite number",
        ),
        ([["id", "tranCode", "amount"], ["a", "1", "2"]], ["--report"], "header has no column 'Amount'"),
        ([["id", "tranCode", "Amount"], ["a", "1", "2"]], ["--overall"], "--overall needs --report"),
        ([["1", "2", "3"]], ["--report"], "has no header row, so its 3 columns cannot be matched"),
        ([["ID", "TRANCODE", "AMOUNT"], ["a", "1", "2"]], ["--report"], "header has no column 'tranCode', 'Amount'"),
    ],
)
def test_bad_csv_values_name_the_line_and_column(model, tmp_path, capsys, rows, extra, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    if extra == ["--report"]:
        extra = ["--report", write_report(tmp_path)]
    code, out, err = run(capsys, "score", model, path, "--out", tmp_path / "out.csv", *extra)
    assert code == 2
    assert err.startswith("python -m kmeans_cli: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []  # no temporary left


def test_a_bad_value_after_the_first_chunk_keeps_its_line_number(model, tmp_path, capsys):
    rows = [["1", "2"]] * 50 + [["3", "4x"]]
    code, _, err = run(capsys, "score", model, write_csv(tmp_path / "bad.csv", rows), "--chunk-rows", 7)
    assert code == 2 and "bad.csv line 51, column 2 (column 2): '4x' is not a number" in err


def _one_feature_report() -> dict:
    return evaluation_report([[0.0], [1.0], [2.0]], features=("Amount",))


def _k4_report() -> dict:
    return evaluation_report([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])


@pytest.mark.parametrize(
    "body,message",
    [
        (report(schemaVersion=1), "schemaVersion: this release reads version 2, the report is version 1"),
        (_one_feature_report(), "names 1 featureColumns that make 1 features, the model has feature_dim 2"),
        (report(featureColumns="tranCode"), "featureColumns: Input should be a valid list"),
        (report(featureColumns=["Amount", "tranCode"]), "treatment columns ['tranCode', 'Amount'] are not"),
        (_k4_report(), "is for k=4, the model has 3 centroids"),
        (report(thresholds={"overall": 1.0, "perCluster": [1.0]}), "thresholds.perCluster has 1 values for k=3"),
        (report(thresholds={"overall": "high", "perCluster": [1, 2, 3]}), "thresholds.overall: Input should be"),
        (
            report(thresholds={"overall": 1e999, "perCluster": [1, 2, 3]}),
            "thresholds.overall: Input should be a finite",
        ),
        (report(smallClusters={**report()["smallClusters"], "clusters": [3]}), "[3] are not clusters of 0..2"),
        (report(modelCentroids=[[0.0]]), "modelCentroids must be k=3 centroids of the treatment's 2 features"),
        ({key: value for key, value in report().items() if key != "treatment"}, "treatment: Field required"),
        ([report()], "is not a JSON object"),
    ],
)
def test_bad_reports_are_named(model, tmp_path, capsys, body, message):
    path = write_csv(tmp_path / "tx.csv", HEADER_ROWS)
    code, _, err = run(capsys, "score", model, path, "--report", write_report(tmp_path, body))
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_other_failures_are_one_line_too(tmp_path, capsys, model):
    (tmp_path / "model.zip").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    code, _, err = run(capsys, "export-centroids", tmp_path / "model.zip")
    assert code == 2 and err.strip().endswith(
        "is a zip archive; SageMaker's K-Means artifact is a tar.gz holding model_algo-1"
    )
    code, _, err = run(capsys, "score", model, tmp_path / "missing.csv")
    assert code == 2 and "No such file or directory" in err and err.count("\n") == 1
    (tmp_path / "r.json").write_text("{not json")
    code, _, err = run(
        capsys, "score", model, write_csv(tmp_path / "a.csv", [["1", "2"]]), "--report", tmp_path / "r.json"
    )
    assert code == 2 and "is not JSON" in err
    (tmp_path / "latin1.csv").write_bytes(b"x,y\n1,2\n3,\xe9\n")
    code, _, err = run(capsys, "score", model, tmp_path / "latin1.csv")
    assert code == 2 and "is not UTF-8 text" in err
    with pytest.raises(SystemExit) as exit_:
        main(["score", str(model)])  # argparse: usage and exit code 2
    assert exit_.value.code == 2


def test_help_documents_both_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "export-centroids MODEL [--out FILE]" in text and "score MODEL CSV [--report REPORT]" in text
    assert cli.__doc__.splitlines()[0] in text
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "--overall" in capsys.readouterr().out


def test_a_flagged_row_is_explained_in_the_csvs_units(tmp_path, capsys):
    """With a report's normal ranges: the feature outside its line of business's range, in the CSV's units."""
    demo = build(tmp_path, rows=20_000)
    model = tmp_path / "model.tar.gz"
    model.write_bytes(write_model_tar_gz(demo.centroids))
    report_path = write_report(tmp_path, demo.report.to_json())
    path = write_csv(tmp_path / "tx.csv", [["tranCode", "Amount"], ["1", "45.10"], ["1", "9000"], ["9", "45"]])
    code, out, err = run(capsys, "score", model, path, "--report", report_path)
    rows = read_csv(out)
    assert code == 0 and rows[0][-1] == "explanation"
    assert [r[5] for r in rows[1:]] == ["false", "true", "true"]
    assert rows[1][-1] == ""
    assert rows[2][-1].startswith("Amount 9,000 where tranCode 1's normal range (cluster ")
    assert rows[3][-1].startswith("tranCode 9: a level not seen in training")
