"""Command line for a SageMaker K-Means model: export its centroids, or score a CSV offline as the endpoint would.

A tool users install with the project (``pip install .``), not part of the Lambda layer: no function imports it.

    python -m kmeans_cli export-centroids MODEL [--out FILE]
    python -m kmeans_cli score MODEL CSV [--report REPORT] [--overall] [--out FILE]
                                      [--header {auto,yes,no}] [--standardized] [--chunk-rows N]

MODEL is the model artifact: a ``model.tar.gz`` (or a bare ``model_algo-1``) on disk, or an ``s3://bucket/key``
URI, read without MXNet. No endpoint is needed; S3 is read with the usual AWS credentials and region.

export-centroids
    Writes ``{"k": K, "featureDim": D, "centroids": [[...], ...]}`` (JSON, to stdout unless ``--out``), every
    value exactly the float32 stored in the artifact. The centroids are in the units the model was trained on:
    model's feature units (the run's report has the treatment that makes them from the CSV's columns).

score
    Reads CSV (a path, or ``-`` for stdin) and writes it back (to stdout unless ``--out``) with the columns
    ``closest_cluster,distance_to_cluster`` appended, and ``score,anomaly`` when a report gives thresholds. The answer
    is the endpoint's within float32 error: the nearest centroid (the first one on a tie) and the Euclidean
    distance to it, computed in float32 (the container's own arithmetic is not documented). Clusters are written as integers, distances as
    the shortest decimal text of the float32 value widened to a double (what the endpoint's JSON holds).

    Feature columns: without ``--report``, every column, in order, and there must be feature_dim of them. With
    ``--report`` (the evaluation step's ``report.json``, a path or an s3:// URI), the report's
    ``featureColumns``, found by header name, so the CSV may hold other columns too (an id, a label, the raw
    source columns); a CSV without a header must then hold exactly the feature columns, in the report's order.

    Header: ``--header auto`` (the default) takes the first row as a header when none of its cells is a number,
    or when it holds one of the report's feature column names. A header is written back with the new column
    names appended; a CSV without a header gets none.

    Treatment: the report's ``treatment`` (or, in reports of schema version 1, ``standardization``) turns the
    CSV's columns into the model's features as the data step did for training: numeric columns as they are or
    z-scored, log columns as z-scored log1p (a negative value stops the run with its line and column), category
    columns one-hot (a level not seen in training is scored with none set, with a warning on stderr).
    ``--standardized`` says the CSV holds the model's features already (a run's test channel).

    Anomalies: ``score`` is the distance over the record's cluster's threshold (``thresholds.perCluster``: the
    report's ``anomalyPercentile`` of that cluster's test distances, never above the overall one; the overall
    threshold for a cluster that had no test records), and ``anomaly`` is ``true`` when the score is above 1;
    with ``--overall``, the overall threshold (``thresholds.overall``) for every cluster. A record closest to a
    cluster the report calls small (``smallClusters``) is scored against the nearest other cluster, as the scoring
    API scores it.

    The CSV is read and scored ``--chunk-rows`` rows at a time (default 10000), so its size does not matter.
    Blank lines are skipped. Every value of a feature column must be a finite number; the first one that is
    not stops the run with its line and column.

Exit status: 0 on success; 2 with a one-line message on stderr (no traceback) when the model, the report, the
CSV or an argument is not usable.

Examples:

    python -m kmeans_cli export-centroids s3://my-bucket/models/run-1/output/model.tar.gz
    python -m kmeans_cli score model.tar.gz transactions.csv \\
        --report s3://my-bucket/reports/run-1/report.json --out scored.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from kmeans_pipeline.aws.uris import split_s3_uri
from kmeans_pipeline.data.treatment import encode, from_report, legacy, negative_log_values
from kmeans_pipeline.errors import PipelineError
from kmeans_pipeline.model.artifact import centroids_to_json, read_centroids
from kmeans_pipeline.model.scoring import anomaly_score, flag, refer, report_small_clusters, score
from kmeans_pipeline.schemas.dataset import FeatureTreatment

PROG = "python -m kmeans_cli"
OUTPUT_COLUMNS = ("closest_cluster", "distance_to_cluster")
ANOMALY_COLUMNS = ("score", "anomaly")
DEFAULT_CHUNK_ROWS = 10_000
MAX_REPORT_BYTES = 64 * 1024 * 1024


class _Clients:
    """One S3 client, made on first use (a local run never creates one)."""

    def __init__(self, s3: Any = None):
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from kmeans_pipeline.aws.clients import client

            self._s3 = client("s3")
        return self._s3


# ------------------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------------------


@dataclass
class ReportView:
    """What scoring takes from an evaluation report."""

    source: str
    feature_columns: list[str]
    treatment: FeatureTreatment
    k: int | None
    per_cluster: list[float | None] | None
    overall: float | None
    # Clusters whose records are scored against the nearest other one (the report's smallClusters).
    small: list[int] = field(default_factory=list)

    @property
    def has_thresholds(self) -> bool:
        return self.overall is not None or any(t is not None for t in self.per_cluster or [])


def _number_or_none(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number or null, got {value!r}")
    return float(value)


def parse_report(data: Any, source: str) -> ReportView:
    """The report's feature columns, standardisation and thresholds, or ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"report {source} is not a JSON object")
    version = data.get("schemaVersion")
    if version not in (1, 2):
        raise ValueError(f"report {source} has schemaVersion {version!r}; this command reads versions 1 and 2")
    columns = data.get("featureColumns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise ValueError(f"report {source}: featureColumns must be a non-empty list of column names")
    if len(set(columns)) != len(columns):
        raise ValueError(f"report {source}: featureColumns {columns} repeats a name")
    if data.get("treatment") is not None:
        try:
            treatment = from_report(data)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"report {source}: treatment is not valid: {' '.join(str(exc).split())[:300]}") from None
        if treatment.input_columns != columns:
            raise ValueError(f"report {source}: treatment columns {treatment.input_columns}, featureColumns {columns}")
    elif data.get("standardization") is not None:  # schema version 1
        try:
            treatment = legacy(columns, data["standardization"])
        except ValueError as exc:
            raise ValueError(f"report {source}: {exc}") from None
    else:
        treatment = legacy(columns, None)
    k = data.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"report {source}: k must be a positive integer, got {k!r}")
    thresholds = data.get("thresholds")
    per_cluster = overall = None
    if thresholds is not None:
        if not isinstance(thresholds, dict):
            raise ValueError(f"report {source}: thresholds must be an object with overall and perCluster")
        overall = _number_or_none(thresholds.get("overall"), f"report {source}: thresholds.overall")
        raw = thresholds.get("perCluster")
        if raw is not None:
            if not isinstance(raw, list):
                raise ValueError(f"report {source}: thresholds.perCluster must be a list")
            per_cluster = [
                _number_or_none(v, f"report {source}: thresholds.perCluster[{i}]") for i, v in enumerate(raw)
            ]
    small = data.get("smallClusters")
    if small is not None:
        listed = small.get("clusters") if isinstance(small, dict) else None
        if not isinstance(listed, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < (k or len(per_cluster or [])) for i in listed
        ):
            raise ValueError(f"report {source}: smallClusters.clusters must be a list of cluster indexes")
    return ReportView(source, columns, treatment, k, per_cluster, overall, report_small_clusters(data))


def load_report(source: str, clients: _Clients) -> ReportView:
    if source.startswith("s3://"):
        bucket, key = split_s3_uri(source)
        from botocore.exceptions import ClientError

        try:
            body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ValueError(f"report {source} cannot be read ({code})") from None
        try:
            raw = body.read(MAX_REPORT_BYTES + 1)
        finally:
            body.close()
    else:
        with open(source, "rb") as fh:
            raw = fh.read(MAX_REPORT_BYTES + 1)
    if len(raw) > MAX_REPORT_BYTES:
        raise ValueError(f"report {source} is over {MAX_REPORT_BYTES:,} bytes: not an evaluation report")
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"report {source} is not JSON: {exc}") from None
    return parse_report(data, source)


# ------------------------------------------------------------------------------------------------------------
# Scoring a CSV
# ------------------------------------------------------------------------------------------------------------


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@dataclass
class _Layout:
    header: list[str] | None
    width: int
    features: list[int]  # column indices, in the model's feature order
    names: list[str]  # for messages


def _layout(first: list[str], mode: str, wanted: list[str] | None, dim: int, csv_name: str) -> _Layout:
    cells = [c.strip() for c in first]
    if mode == "auto":
        named = wanted is not None and bool(set(wanted) & set(cells))
        has_header = named or not any(_is_number(c) for c in cells)
    else:
        has_header = mode == "yes"
    width = len(first)
    if wanted is None:
        if width != dim:
            raise ValueError(
                f"{csv_name} has {width} columns, but the model has feature_dim {dim}: without --report every "
                "column is a feature"
            )
        names = cells if has_header else [f"column {i + 1}" for i in range(width)]
        return _Layout(first if has_header else None, width, list(range(width)), names)
    if has_header:
        missing = [name for name in wanted if name not in cells]
        if missing:
            raise ValueError(
                f"{csv_name}'s header has no column {', '.join(map(repr, missing))} (the report's featureColumns "
                f"are {wanted}; the header holds {cells})"
            )
        repeated = [name for name in wanted if cells.count(name) > 1]
        if repeated:
            raise ValueError(f"{csv_name}'s header holds the feature column {repeated[0]!r} more than once")
        return _Layout(first, width, [cells.index(name) for name in wanted], list(wanted))
    if width != len(wanted):
        raise ValueError(
            f"{csv_name} has no header row, so its {width} columns cannot be matched to the report's "
            f"{len(wanted)} featureColumns {wanted}: add a header or keep only those columns, in that order"
        )
    return _Layout(None, width, list(range(width)), list(wanted))


def _parse_batch(cells: list[list[str]], lines: list[int], layout: _Layout, csv_name: str) -> np.ndarray:
    try:
        X = np.array(cells, dtype=np.float64)
    except ValueError:
        X = None
    if X is None or not np.isfinite(X).all():
        for line, row in zip(lines, cells):
            for position, cell in enumerate(row):
                try:
                    value = float(cell)
                except ValueError:
                    value = None
                if value is None or not math.isfinite(value):
                    column = layout.features[position]
                    problem = "is not a number" if value is None else "is not a finite number"
                    raise ValueError(
                        f"{csv_name} line {line}, column {column + 1} ({layout.names[position]}): "
                        f"{cell.strip()!r} {problem}"
                    )
        raise AssertionError("numpy and float() disagree")  # pragma: no cover
    return X.reshape(len(cells), len(layout.features))


def _rows(reader: Any, csv_name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) of every non-blank row."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"{csv_name} line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{csv_name} near line {reader.line_num + 1} is not UTF-8 text: {exc}") from None
        if row and any(cell.strip() for cell in row):
            yield reader.line_num, row


def score_csv(
    centroids: np.ndarray,
    source: IO[str],
    out: IO[str],
    *,
    csv_name: str = "CSV",
    report: ReportView | None = None,
    overall: bool = False,
    header: str = "auto",
    standardized: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Score every row of ``source`` (text CSV) into ``out``; returns the number of rows scored."""
    k, dim = centroids.shape
    thresholds: list[float | None] | None = None
    if report is not None:
        if report.k is not None and report.k != k:
            raise ValueError(f"report {report.source} is for k={report.k}, the model has {k} centroids")
        if report.treatment.feature_dim != dim:
            raise ValueError(
                f"report {report.source} names {len(report.feature_columns)} featureColumns that make "
                f"{report.treatment.feature_dim} features, the model has feature_dim {dim}"
            )
        if overall and report.overall is None:
            raise ValueError(f"--overall: report {report.source} has no thresholds.overall")
        if report.has_thresholds:
            if overall:
                thresholds = [None] * k
            else:
                thresholds = report.per_cluster if report.per_cluster is not None else [None] * k
                if len(thresholds) != k:
                    raise ValueError(
                        f"report {report.source} has {len(thresholds)} thresholds.perCluster for k={k} clusters"
                    )
    elif overall:
        raise ValueError("--overall needs --report (the thresholds are in the report)")
    small = report.small if report is not None else []
    # The report's treatment turns the CSV's columns into the model's features, unless the CSV holds those already.
    treatment = report.treatment if report is not None and not standardized else None
    wanted = (
        None if report is None else report.feature_columns if treatment is not None else report.treatment.feature_names
    )

    reader = csv.reader(source)
    rows = _rows(reader, csv_name)
    first = next(rows, None)
    if first is None:
        return 0
    layout = _layout(first[1], header, wanted, dim, csv_name)
    writer = csv.writer(out, lineterminator="\n")
    extra = list(OUTPUT_COLUMNS) + (list(ANOMALY_COLUMNS) if thresholds is not None else [])
    pending: list[tuple[int, list[str]]] = []
    if layout.header is not None:
        writer.writerow(layout.header + extra)
    else:
        pending.append(first)
    scored = 0

    def flush() -> None:
        nonlocal scored
        lines = [line for line, _ in pending]
        cells = [[row[i] for i in layout.features] for _, row in pending]
        X = _parse_batch(cells, lines, layout, csv_name)
        if treatment is not None:
            negative = negative_log_values(treatment, X)
            if negative.any():
                r, j = (int(v[0]) for v in np.nonzero(negative))
                raise ValueError(
                    f"{csv_name} line {lines[r]}, column {layout.features[j] + 1} ({layout.names[j]}): "
                    f"{X[r, j]:g} is negative, and the model takes log1p({layout.names[j]})"
                )
            X, unseen = encode(treatment, X)
            for r, j in zip(*np.nonzero(unseen)):
                print(
                    f"{PROG}: warning: {csv_name} line {lines[r]}: {layout.names[j]} level {cells[r][j].strip()} was "
                    "not seen in training; scored with none of its levels set",
                    file=sys.stderr,
                )
        X = X.astype(np.float32)
        closest, distance = score(X, centroids)
        columns = [[str(c) for c in closest.tolist()], [repr(d) for d in distance.astype(np.float64).tolist()]]
        if thresholds is not None:
            reference, referred = refer(X, closest, distance, centroids, small)
            flags = flag(reference, referred, thresholds, report.overall)
            scores = anomaly_score(reference, referred, thresholds, report.overall)
            columns.append([repr(float(v)) for v in scores.tolist()])
            columns.append(["true" if f else "false" for f in flags.tolist()])
        writer.writerows(row + list(values) for (_, row), values in zip(pending, zip(*columns)))
        scored += len(pending)
        pending.clear()

    chunk_rows = max(1, int(chunk_rows))
    for line, row in rows:
        if len(row) != layout.width:
            raise ValueError(f"{csv_name} line {line} has {len(row)} columns, line {first[0]} has {layout.width}")
        pending.append((line, row))
        if len(pending) >= chunk_rows:
            flush()
    if pending:
        flush()
    return scored


# ------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a file that appears (atomically) only when the command succeeds."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary file, not the result
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise


@contextmanager
def _input(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        return
    with open(path, encoding="utf-8-sig", newline="") as fh:
        yield fh


# ------------------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------------------


def _export(args: argparse.Namespace, clients: _Clients) -> None:
    centroids = _read_model(args.model, clients)
    with _output(args.out) as out:
        out.write(json.dumps(centroids_to_json(centroids)) + "\n")


def _score(args: argparse.Namespace, clients: _Clients) -> None:
    centroids = _read_model(args.model, clients)
    report = load_report(args.report, clients) if args.report else None
    csv_name = "stdin" if args.csv == "-" else args.csv
    with _input(args.csv) as source, _output(args.out) as out:
        score_csv(
            centroids,
            source,
            out,
            csv_name=csv_name,
            report=report,
            overall=args.overall,
            header=args.header,
            standardized=args.standardized,
            chunk_rows=args.chunk_rows,
        )


def _read_model(model: str, clients: _Clients) -> np.ndarray:
    return read_centroids(model, s3=clients.s3 if model.startswith("s3://") else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{export-centroids,score}")

    export = commands.add_parser(
        "export-centroids",
        help="write the model's centroids as JSON",
        description='Write {"k", "featureDim", "centroids"} (JSON) of a K-Means model artifact.',
    )
    export.add_argument("model", metavar="MODEL", help="model.tar.gz or model_algo-1: a path or an s3:// URI")
    export.add_argument("--out", metavar="FILE", help="write the JSON here instead of stdout")
    export.set_defaults(run=_export)

    scorer = commands.add_parser(
        "score",
        help="score a CSV offline, as the endpoint would (within float32 error)",
        description="Append closest_cluster, distance_to_cluster (and score, anomaly, with a report's thresholds) to "
        f"every row of a CSV, computed as SageMaker's K-Means endpoint does. See `{PROG} --help` "
        "for the rules on feature columns, headers and treatments.",
    )
    scorer.add_argument("model", metavar="MODEL", help="model.tar.gz or model_algo-1: a path or an s3:// URI")
    scorer.add_argument("csv", metavar="CSV", help="the CSV to score: a path, or - for stdin")
    scorer.add_argument(
        "--report",
        metavar="REPORT",
        help="the evaluation report.json (path or s3:// URI): feature columns by header name, "
        "treatment, and the thresholds of the score and anomaly columns",
    )
    scorer.add_argument(
        "--overall",
        action="store_true",
        help="flag anomalies by the report's overall threshold instead of each cluster's",
    )
    scorer.add_argument("--out", metavar="FILE", help="write the scored CSV here instead of stdout")
    scorer.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the first row is a header (default: auto)",
    )
    scorer.add_argument(
        "--standardized",
        action="store_true",
        help="the CSV holds the model's features already: do not apply the report's treatment",
    )
    scorer.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows read and scored at a time (default {DEFAULT_CHUNK_ROWS})",
    )
    scorer.set_defaults(run=_score)
    return parser


def main(argv: list[str] | None = None, *, s3: Any = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args, _Clients(s3))
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (PipelineError, ValueError, OSError) as exc:
        return _fail(exc)
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):  # no credentials, S3 throttling or server errors
            return _fail(exc)
        raise
    return 0


def _fail(exc: BaseException) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2
