"""The demo's view of a run's evaluation report: a terminal table, the sample scored with the model, how many of the
injected anomalies the thresholds catch, and a picture.

The report is the JSON the "Evaluate model" step writes (``kmeans_pipeline.steps.evaluate_model``). Its distances and thresholds
are in the model's units (the features its treatment makes); its centroids (and this module's scatter plot) are in
the CSV's units.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kmeans_pipeline.data.blocks import BLOCK_BYTES
from kmeans_pipeline.data.features import read_feature_rows
from kmeans_pipeline.data.treatment import encode
from kmeans_pipeline.model.scoring import anomaly_score, flag, refer, score
from kmeans_pipeline.schemas.dataset import ColumnTreatment
from kmeans_pipeline.schemas.report import EvaluationReport, read_report

# The report as the pipeline wrote it (parsed JSON) or validated: every function here validates it first.
Report = EvaluationReport | Mapping[str, Any]
MAX_SCATTER_POINTS = 50_000
WIDTH = 100  # of the wrapped text lines


# ------------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A number for a table cell: thousands separators, about four significant digits; "-" for None."""
    if value is None:
        return "-"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:,.1f}"
    if size >= 0.995 or size == 0:  # what rounds to 1.00 shows as 1.00
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2%}"


def _grid(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Right-aligned columns (the first ``left`` left-aligned), two spaces apart, with a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def _how(column: ColumnTreatment) -> str:
    # A std of 0 (every training value equal) only centres the column: say so, not "z-scored".
    scaled = ", z-scored" if column.std != 0 else ", centred only (its training values are all equal: std 0)"
    how = {
        "category": f"category, one-hot over {len(column.levels or [])} levels",
        "log": "log1p" + scaled,
        "numeric": "numeric" + (scaled if column.standardize else ""),
    }[column.kind]
    if column.weights is not None and any(w != 1 for w in column.weights):
        how += ", weight " + "/".join(f"{w:.3g}" for w in column.weights)
    return f"  {column.column}: {how} ({column.decided}" + (f": {column.reason})" if column.decided == "auto" else ")")


def _k_lines(report: EvaluationReport) -> list[str]:
    choice = report.k_choice
    if choice is None:
        return []
    lines = _wrapped(choice.reason, "How k was set: ")
    if choice.candidates:
        lines.append(
            "  Davies-Bouldin index per k: " + ", ".join(f"{c.k}: {fmt(c.davies_bouldin)}" for c in choice.candidates)
        )
    return lines


def _cluster_rows(report: EvaluationReport) -> list[list[str]]:
    rows = []
    for cluster in report.clusters:
        rows.append(
            [
                f"{cluster.index} (small)" if cluster.small else str(cluster.index),
                f"{cluster.size:,}",
                _share(cluster.share),
                *(fmt(v) for v in cluster.centroid),
                fmt(cluster.distance.p50),
                fmt(cluster.distance.p99),
                fmt(cluster.distance.max),
                *([fmt(cluster.threshold)] if _per_cluster(report) else []),
            ]
        )
    overall = report.distance
    rows.append(
        [
            "all",
            f"{report.evaluated_rows:,}",
            _share(1.0 if report.evaluated_rows else None),
            *("" for _ in report.feature_columns),
            fmt(overall.p50),
            fmt(overall.p99),
            fmt(overall.max),
            *([fmt(report.thresholds.overall)] if _per_cluster(report) else []),
        ]
    )
    return rows


def _per_cluster(report: EvaluationReport) -> bool:
    """Whether the report scores any cluster against a threshold of its own (today's rule scores every record
    against the overall threshold: then a per-cluster column and count would only repeat the overall ones)."""
    return any(t is not None for t in report.thresholds.per_cluster)


def _wrapped(text: str, first: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent="  ", break_on_hyphens=False)


def report_table(report: Report) -> str:
    """The report as aligned plain text: per cluster, overall, flagged shares, the gate decision and the headline."""
    report = read_report(report, "of the run")
    features = report.feature_columns
    lines = [
        f"Evaluation report of run {report.run_id} (training job {report.training_job})",
        f"k={report.k}, {report.evaluated_rows:,} test records scored, "
        f"test MSD {fmt(report.evaluation_msd)}; the features:",
        *(_how(column) for column in report.treatment.columns),
        *(_wrapped(report.treatment.weighting, "Feature weights: ") if report.treatment.weighting else []),
        *_k_lines(report),
        "Centroids in the CSV's units (a category: its heaviest level); distances and thresholds in the model's; "
        f"every record is scored against the overall threshold, the {report.anomaly_percentile:g}th-percentile "
        "test distance (a cluster's own p99 describes its spread)",
        "",
    ]
    header = ["cluster", "size", "share", *features, "p50 dist", "p99 dist", "max dist"]
    header += ["threshold"] if _per_cluster(report) else []
    lines += _grid(header, _cluster_rows(report))
    small = [c for c in report.clusters if c.small]
    decisions = report.small_clusters.decisions
    if decisions:
        lines.append(f"Small clusters (smallClusters: {report.small_clusters.rule}):")
        lines += [
            line
            for d in decisions
            for line in _wrapped(d.reason, f"  {d.index}: {'anomalous' if d.anomalous else 'a kind of record'}: ")
        ]
    if small:
        lines.append(
            f"The {_share(sum(c.closest_share for c in small))} of test records closest to the small cluster(s) "
            f"{', '.join(str(c.index) for c in small)} are scored against the nearest large cluster, and counted there"
        )
    overall = report.distance.to_json()
    lines += ["", "Distance percentiles, all test records: " + ", ".join(f"{k} {fmt(v)}" for k, v in overall.items())]
    flagged, n = report.flagged, report.evaluated_rows
    beyond_overall = f"beyond the overall threshold {fmt(report.thresholds.overall)}"
    if _per_cluster(report):
        lines.append(
            f"Flagged: {flagged.per_cluster:,} of {n:,} test records ({_share(flagged.per_cluster_share)}) "
            f"beyond their cluster's threshold; {flagged.overall:,} ({_share(flagged.overall_share)}) {beyond_overall}"
        )
    else:
        lines.append(
            f"Flagged: {flagged.overall:,} of {n:,} test records ({_share(flagged.overall_share)}) {beyond_overall}"
        )
    gate = report.gate
    serving = "none" if gate.serving_msd is None else fmt(gate.serving_msd)
    lines += [
        "",
        f"Gate: {gate.decision.upper()} (new test MSD {fmt(gate.new_msd)}, serving model's {serving}, "
        f"tolerance {gate.tolerance_percent:g}%)",
        *_wrapped(gate.reason, "  "),
        "",
        *_wrapped(report.headline, "Headline: "),
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Scoring the sample
# ------------------------------------------------------------------------------------------------------------


def read_rows(csv_path: Path, feature_columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(the named columns of every data row as float64, each row's 1-based line number), read as the data step reads
    the object (``kmeans_pipeline.data.split.read_feature_rows``: gzip, BOM, quoting, blank lines, columns by name)."""
    with Path(csv_path).open("rb") as fh:
        _, X, lines = read_feature_rows(iter(lambda: fh.read(BLOCK_BYTES), b""), list(feature_columns))
    return X, lines


def read_features(csv_path: Path, feature_columns: list[str]) -> np.ndarray:
    """The named columns of every data row of a CSV with a header row, in that order, as float64."""
    return read_rows(csv_path, feature_columns)[0]


def model_centroids(report: Report) -> np.ndarray:
    """The report's centroids in the model's units (when the model artifact is not at hand)."""
    return np.asarray(read_report(report, "of the run").model_centroids, dtype=np.float32)


def anomaly_scores(
    csv_path: Path | None, report: Report, centroids: np.ndarray | None = None, *, X: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster, distance, flagged) of every data row of the CSV, as the report and the scoring API see them: the
    endpoint's closest cluster and distance, or, for a row closest to a cluster the report calls small, the nearest
    other cluster and the distance to it.

    The feature columns are taken by name from the report; its treatment is applied before scoring. ``centroids``
    are the model's own (``kmeans_pipeline.model.artifact.read_centroids``; the report's, converted, when None). A row is
    flagged when it lies beyond its cluster's threshold (the report's rule). ``X``: the rows in original units when
    already read (``read_features``), instead of reading ``csv_path``.
    """
    report = read_report(report, "of the run")
    if X is None:
        X = read_features(Path(str(csv_path)), report.feature_columns)
    Z, _ = encode(report.treatment, X)
    C = model_centroids(report) if centroids is None else centroids
    closest, distance = score(Z.astype(np.float32), C)
    closest, distance = refer(Z, closest, distance, C, report.small_clusters.clusters)
    thresholds = report.thresholds
    flagged = flag(closest, distance, thresholds.per_cluster, thresholds.overall)
    return closest, distance, flagged


def scores(report: Report, closest: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Each row's anomaly score: its distance over its cluster's threshold (above 1 is flagged)."""
    thresholds = read_report(report, "of the run").thresholds
    return anomaly_score(closest, distance, thresholds.per_cluster, thresholds.overall)


def average_precision(score_values: np.ndarray, anomalies: np.ndarray) -> float:
    """Average precision of ranking the rows by score against the known anomalies (scikit-learn's definition:
    the mean of the precision at each anomaly's rank, ties ranked together); NaN without anomalies."""
    y = np.asarray(anomalies, dtype=bool)
    if not y.any():
        return math.nan
    order = np.argsort(-np.asarray(score_values, dtype=np.float64), kind="stable")
    s, y = np.asarray(score_values, dtype=np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each group of equal scores
    hits = np.cumsum(y)[last]
    precision = hits / (last + 1)
    recall_steps = np.diff(np.r_[0, hits]) / y.sum()
    return float((precision * recall_steps).sum())


def flagged_overall(report: Report, closest: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """True where a row lies beyond the report's overall threshold, whatever its cluster."""
    report = read_report(report, "of the run")
    return flag(closest, distance, [None] * report.k, report.thresholds.overall)


def recall_precision(flagged_rows: Any, anomaly_lines: list[int]) -> tuple[float, float]:
    """(recall, precision) of the flagged rows against the injected anomalies.

    ``flagged_rows``: 0-based data row indexes (a set, a list or an integer array) or a boolean mask over the rows.
    ``anomaly_lines``: the sample's file line numbers (``Sample.anomaly_lines``: 1-based, the header is line 1, so
    data row i is on line i + 2; the generated sample has no blank lines). NaN where undefined (no anomaly, nothing
    flagged).
    """
    array = np.asarray(list(flagged_rows) if isinstance(flagged_rows, (set, frozenset)) else flagged_rows)
    flagged = set(np.flatnonzero(array).tolist() if array.dtype == bool else array.astype(np.int64).ravel().tolist())
    anomalies = {int(line) - 2 for line in anomaly_lines}
    if any(row < 0 for row in anomalies):
        raise ValueError("anomaly lines are 1-based file line numbers after the header (line 1): each must be >= 2")
    caught = len(flagged & anomalies)
    recall = caught / len(anomalies) if anomalies else math.nan
    precision = caught / len(flagged) if flagged else math.nan
    return recall, precision


# ------------------------------------------------------------------------------------------------------------
# The picture
# ------------------------------------------------------------------------------------------------------------


def _wide(values: np.ndarray) -> bool:
    """Worth a log axis: all positive and spanning more than three decades."""
    values = values[np.isfinite(values)]
    return bool(values.size) and values.min() > 0 and values.max() / values.min() > 1000


def _legend_handles(colour: list, k: int, anomalies: bool, centroids: bool) -> list:
    """Legend markers of a readable size (the points themselves are tiny)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=6, color=colour[c], label=f"cluster {c}") for c in range(k)
    ]
    handles.append(Line2D([], [], linestyle="", marker="x", markersize=7, color="black", label="flagged"))
    if anomalies:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                markersize=8,
                markerfacecolor="none",
                markeredgecolor="red",
                label="injected anomaly",
            )
        )
    if centroids:
        handles.append(
            Line2D(
                [], [], linestyle="", marker="*", markersize=13, color="0.7", markeredgecolor="black", label="centroid"
            )
        )
    return handles


def _scatter(
    axes: Any,
    report: EvaluationReport,
    X: np.ndarray,
    closest: np.ndarray,
    flagged: np.ndarray,
    anomalies: np.ndarray | None,
    colour: list,
    seed: int,
) -> None:
    """(a) the records in the first two feature columns, original units: by cluster, flagged ones marked."""
    features, k = report.feature_columns, report.k
    centroids = np.asarray(report.centroids, dtype=np.float64)
    rng = np.random.default_rng(seed)
    shown = np.arange(len(X))
    if len(X) > MAX_SCATTER_POINTS:
        # Every flagged record, and a random sample of the others.
        ordinary = np.flatnonzero(~flagged)
        keep = rng.choice(ordinary, size=max(0, MAX_SCATTER_POINTS - int(flagged.sum())), replace=False)
        shown = np.sort(np.concatenate([np.flatnonzero(flagged), keep]))
    if X.shape[1] >= 2:
        x, y = X[shown, 0], X[shown, 1]
        x_name, y_name = features[0], features[1]
        cx, cy = centroids[:, 0], centroids[:, 1]
    else:  # one feature: against the row number
        x, y = shown.astype(np.float64), X[shown, 0]
        x_name, y_name = "row", features[0]
        cx, cy = np.array([]), np.array([])
    if len(np.unique(X[:, 0])) <= 20 and X.shape[1] >= 2:  # a categorical code: spread the points
        x = x + rng.uniform(-0.25, 0.25, len(x))
        x_name += " (jittered)"
    f = flagged[shown]
    for c in range(k):
        mine = (closest[shown] == c) & ~f
        axes.scatter(
            x[mine], y[mine], s=3, alpha=0.35, color=colour[c], linewidths=0, rasterized=True, label=f"cluster {c}"
        )
    axes.scatter(x[f], y[f], s=28, marker="x", color="black", linewidths=1.0, label="flagged (beyond threshold)")
    if anomalies is not None:
        a = anomalies[shown]
        axes.scatter(x[a], y[a], s=70, facecolors="none", edgecolors="red", linewidths=0.9, label="injected anomaly")
    if len(cx):
        axes.scatter(
            cx,
            cy,
            s=260,
            marker="*",
            c=[colour[c] for c in range(len(cx))],
            edgecolors="black",
            linewidths=1.2,
            zorder=5,
            label="centroids",
        )
    if _wide(y):
        axes.set_yscale("log")
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name + (" (log scale)" if _wide(y) else ""))
    axes.set_title(f"Records ({len(shown):,} of {len(X):,}), coloured by closest centroid")
    handles = _legend_handles(colour, k, anomalies is not None, bool(len(cx)))
    # Below the plot, so that no point is hidden.
    axes.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.11),
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
    )


def _histogram(
    axes: Any, report: EvaluationReport, distance: np.ndarray, anomalies: np.ndarray | None, colour: list
) -> None:
    """(b) the distance histogram with the thresholds."""
    d = distance[np.isfinite(distance)]
    overall = report.thresholds.overall
    log_x = _wide(d[d > 0]) and (d > 0).all()
    counts = np.zeros(1)
    if d.size:
        bins = np.geomspace(d.min(), d.max(), 80) if log_x else 80
        counts, bins, _ = axes.hist(d, bins=bins, color="0.6", edgecolor="0.4", linewidth=0.3, label="all records")
        if anomalies is not None:
            injected = distance[anomalies & np.isfinite(distance)]
            axes.hist(injected, bins=bins, color="red", alpha=0.55, label=f"injected anomalies ({len(injected):,})")
    if log_x:
        axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_ylim(0.5, max(10.0, float(counts.max()) * 40))  # headroom for the legend
    if overall is not None:
        axes.axvline(
            overall,
            color="black",
            linewidth=2.2,
            label=f"overall threshold {fmt(overall)} (p{report.anomaly_percentile:g})",
        )
    per_cluster = report.thresholds.per_cluster
    for c, t in enumerate(per_cluster if len(per_cluster) <= 10 else []):
        if t is not None:
            axes.axvline(t, color=colour[c], linestyle="--", linewidth=1.1, label=f"cluster {c} threshold {fmt(t)}")
    axes.set_xlabel(f"distance to the closest centroid (model units{', log scale' if log_x else ''})")
    axes.set_ylabel("records (log scale)")
    axes.set_title("Distances, with the anomaly thresholds")
    axes.legend(loc="upper right", fontsize=8, framealpha=0.85)


def save_picture(
    path: Path,
    report: Report,
    X_original_units: np.ndarray,
    closest: np.ndarray,
    distance: np.ndarray,
    flagged: np.ndarray,
    *,
    anomalies: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """A PNG: the records in the first two feature columns (by cluster, flagged ones marked, centroids) and the
    distance histogram with the thresholds. ``anomalies``: optional mask of the injected anomalies, circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = read_report(report, "of the run")
    flagged = np.asarray(flagged, dtype=bool)
    mask = None if anomalies is None else np.asarray(anomalies, dtype=bool)
    colours = plt.get_cmap("tab10" if report.k <= 10 else "tab20")
    colour = [colours(i % colours.N) for i in range(report.k)]

    fig, (scatter, histogram) = plt.subplots(1, 2, figsize=(15, 6.8), gridspec_kw={"width_ratios": [1.15, 1]})
    fig.suptitle(
        f"K-Means k={report.k}, run {report.run_id}: {report.gate.decision}; "
        f"{report.flagged.per_cluster_share:.2%} of {report.evaluated_rows:,} test records flagged"
        f"; {int(flagged.sum()):,} of {len(flagged):,} records shown here flagged",
        fontsize=12,
    )
    X = np.asarray(X_original_units, dtype=np.float64)
    _scatter(scatter, report, X, np.asarray(closest), flagged, mask, colour, seed)
    _histogram(histogram, report, np.asarray(distance, dtype=np.float64), mask, colour)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
