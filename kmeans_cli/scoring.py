"""Scoring a CSV as the endpoint scores it, a chunk of rows at a time, with a report's treatment and thresholds."""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from kmeans_pipeline.data.treatment import encode, negative_log_values
from kmeans_pipeline.model.explain import Explainer
from kmeans_pipeline.model.scoring import anomaly_score, flag, refer, score
from kmeans_pipeline.schemas.dataset import FeatureTreatment
from kmeans_pipeline.schemas.report import EvaluationReport

PROG = "python -m kmeans_cli"
OUTPUT_COLUMNS = ("closest_cluster", "distance_to_cluster")
ANOMALY_COLUMNS = ("score", "anomaly")
# With a report's treatment: why a flagged row is flagged (empty for the others).
EXPLANATION_COLUMN = "explanation"
DEFAULT_CHUNK_ROWS = 10_000


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


def _thresholds(report: EvaluationReport, name: str, k: int, dim: int, overall: bool) -> list[float | None] | None:
    """The per-cluster thresholds the anomaly columns use (all None with --overall), or None: no anomaly columns."""
    if report.k != k:
        raise ValueError(f"report {name} is for k={report.k}, the model has {k} centroids")
    if report.treatment.feature_dim != dim:
        raise ValueError(
            f"report {name} names {len(report.feature_columns)} featureColumns that make "
            f"{report.treatment.feature_dim} features, the model has feature_dim {dim}"
        )
    if overall and report.thresholds.overall is None:
        raise ValueError(f"--overall: report {name} has no thresholds.overall")
    if not report.has_thresholds:
        return None
    return [None] * k if overall else list(report.thresholds.per_cluster)


@dataclass
class _Scorer:
    """Scores chunks of CSV rows and writes them with the new columns."""

    centroids: np.ndarray
    layout: _Layout
    csv_name: str
    treatment: FeatureTreatment | None  # None: the CSV holds the model's features already
    thresholds: list[float | None] | None
    overall: float | None
    small: list[int]
    explainer: Explainer | None  # with a report's treatment and thresholds

    def features(self, cells: list[list[str]], lines: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(raw values, model features, unseen levels (None without a treatment)) of the rows."""
        X = _parse_batch(cells, lines, self.layout, self.csv_name)
        if self.treatment is None:
            return X, X, None
        negative = negative_log_values(self.treatment, X)
        if negative.any():
            r, j = (int(v[0]) for v in np.nonzero(negative))
            name = self.layout.names[j]
            raise ValueError(
                f"{self.csv_name} line {lines[r]}, column {self.layout.features[j] + 1} ({name}): "
                f"{X[r, j]:g} is negative, and the model takes log1p({name})"
            )
        Z, unseen = encode(self.treatment, X)
        for r, j in zip(*np.nonzero(unseen)):
            print(
                f"{PROG}: warning: {self.csv_name} line {lines[r]}: {self.layout.names[j]} level "
                f"{cells[r][j].strip()} was not seen in training; scored with none of its levels set",
                file=sys.stderr,
            )
        return X, Z, unseen

    def columns(self, pending: list[tuple[int, list[str]]]) -> list[list[str]]:
        """The new columns' values of these rows, one list per column."""
        cells = [[row[i] for i in self.layout.features] for _, row in pending]
        raw, Z, unseen = self.features(cells, [line for line, _ in pending])
        X = Z.astype(np.float32)
        closest, distance = score(X, self.centroids)
        columns = [[str(c) for c in closest.tolist()], [repr(d) for d in distance.astype(np.float64).tolist()]]
        if self.thresholds is not None:
            reference, referred = refer(X, closest, distance, self.centroids, self.small)
            flags = flag(reference, referred, self.thresholds, self.overall)
            scores = anomaly_score(reference, referred, self.thresholds, self.overall)
            columns.append([repr(float(v)) for v in scores.tolist()])
            columns.append(["true" if f else "false" for f in flags.tolist()])
            if self.explainer is not None and unseen is not None:
                why = [""] * len(flags)
                rows = np.flatnonzero(flags)
                for r, explanation in zip(
                    rows.tolist(), self.explainer.explain_many(raw[rows], Z[rows], unseen[rows], reference[rows])
                ):
                    why[r] = explanation.text
                columns.append(why)
        return columns


def score_csv(
    centroids: np.ndarray,
    source: IO[str],
    out: IO[str],
    *,
    csv_name: str = "CSV",
    report: EvaluationReport | None = None,
    report_name: str = "",
    overall: bool = False,
    header: str = "auto",
    standardized: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Score every row of ``source`` (text CSV) into ``out``; returns the number of rows scored."""
    k, dim = centroids.shape
    if report is None and overall:
        raise ValueError("--overall needs --report (the thresholds are in the report)")
    thresholds = None if report is None else _thresholds(report, report_name or "given", k, dim, overall)
    # The report's treatment turns the CSV's columns into the model's features, unless the CSV holds those already.
    treatment = report.treatment if report is not None and not standardized else None
    wanted = None
    if report is not None:
        wanted = report.feature_columns if treatment is not None else report.treatment.feature_names

    rows = _rows(csv.reader(source), csv_name)
    first = next(rows, None)
    if first is None:
        return 0
    layout = _layout(first[1], header, wanted, dim, csv_name)
    scorer = _Scorer(
        centroids,
        layout,
        csv_name,
        treatment,
        thresholds,
        report.thresholds.overall if report is not None else None,
        report.small_clusters.clusters if report is not None else [],
        Explainer(report) if report is not None and treatment is not None and thresholds is not None else None,
    )
    writer = csv.writer(out, lineterminator="\n")
    pending: list[tuple[int, list[str]]] = []
    if layout.header is not None:
        new = list(OUTPUT_COLUMNS) + (list(ANOMALY_COLUMNS) if thresholds is not None else [])
        writer.writerow(layout.header + new + ([EXPLANATION_COLUMN] if scorer.explainer is not None else []))
    else:
        pending.append(first)
    scored = 0
    chunk_rows = max(1, int(chunk_rows))
    for line, row in rows:
        if len(row) != layout.width:
            raise ValueError(f"{csv_name} line {line} has {len(row)} columns, line {first[0]} has {layout.width}")
        pending.append((line, row))
        if len(pending) >= chunk_rows:
            scored += _write(writer, pending, scorer)
    if pending:
        scored += _write(writer, pending, scorer)
    return scored


def _write(writer: Any, pending: list[tuple[int, list[str]]], scorer: _Scorer) -> int:
    """Score and write the pending rows, then forget them; returns how many there were."""
    columns = scorer.columns(pending)
    writer.writerows(row + list(values) for (_, row), values in zip(pending, zip(*columns)))
    count = len(pending)
    pending.clear()
    return count
