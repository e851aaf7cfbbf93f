"""Drift: how far a window of live scored records has moved from what the model's evaluation saw. numpy only.

Two tests, both against the evaluation report of the model that scored the window:

- **PSI** (population stability index) on the distances and on each feature column: the test records' distribution
  in fixed bins (``baseline``, written into the report by Evaluate) against the window's, PSI = sum over bins of
  (a - e) ln(a / e), e the test share and a the window's share of a bin. The usual reading, 0.1 "moderate" and 0.25
  "significant" (Yurdakul, *Statistical Properties of Population Stability Index*, 2018), ignores sample size;
  with at least 1,000 records a window stays far below 0.25 when nothing changed (docs/usage.md, "Drift").
- **The flagged share**: the window's flagged count against the test set's, both estimates of one rate. The test
  share is not that rate: the threshold is the test distances' percentile, so the share the model flags on unchanged
  traffic differs from it by about its sampling error (a binomial test against it as an exact rate alarmed for 21 of
  200 simulated models at windows of 10,000, with 2,000 test rows). One-sided Fisher's exact test of the two
  samples: with the test rows' and the window's flagged counts fixed in total, the p-value is the hypergeometric upper
  tail P(X >= the window's flagged), which sums at most the test set's flagged count + 1 terms at any window size.

The report's bins: numeric and log columns at the test rows' deciles (ties merged: an ATM amount in $20 steps makes
several deciles equal), categories by level plus one bin for levels unseen in training, distances at the deciles
and the 95th and 99th percentiles (so that a change in the tail counts). Each bin's share is counted from the test
rows with the same rule the window is counted with, so equal shares are never assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kmeans_pipeline.schemas.dataset import FeatureTreatment

COLUMN_PERCENTILES = tuple(range(10, 100, 10))
DISTANCE_PERCENTILES = (*COLUMN_PERCENTILES, 95, 99)
# Added to each window count, so that an empty bin does not make ln(a / e) infinite (Jeffreys' prior).
SMOOTHING = 0.5
# The least share a bin is expected to hold: a level unseen in training, a bin no test row fell into.
FLOOR = 1e-6
# The defaults the stack's parameters start from (docs/usage.md says why).
PSI_THRESHOLD = 0.25
PSI_WATCH = 0.1
FLAGGED_P_VALUE = 1e-4
MIN_RECORDS = 1000


def bin_counts(values: np.ndarray, edges: list[float] | np.ndarray) -> np.ndarray:
    """Counts in the bins (-inf, e1], (e1, e2], ..., (em, inf) of the inner edges e1 < ... < em."""
    edges = np.asarray(edges, dtype=np.float64)
    return np.bincount(
        np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left"), minlength=len(edges) + 1
    )


def level_counts(values: np.ndarray, levels: list[float]) -> np.ndarray:
    """Counts per level, then one count of the values that are none of them (unseen levels)."""
    values = np.asarray(values, dtype=np.float64)
    hot = values[:, None] == np.asarray(levels, dtype=np.float64)[None, :]
    return np.append(hot.sum(0), int((~hot.any(1)).sum()))


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def bins_of(values: np.ndarray, percentiles: tuple[int, ...]) -> dict[str, list[float]]:
    """{"edges", "shares"}: inner edges at the values' percentiles (values that occur; equal ones merged), each bin's
    share of them."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"edges": [], "shares": [1.0]}
    edges = np.unique(np.percentile(values, percentiles, method="inverted_cdf"))
    return {"edges": edges.tolist(), "shares": _shares(bin_counts(values, edges))}


def baseline(treatment: FeatureTreatment, raw: np.ndarray, distance: np.ndarray) -> dict[str, Any]:
    """What the report keeps for drift checks: the bins of the test rows' distances (to the cluster each is scored
    against) and of each feature column (raw values, in the CSV's units), with each bin's share."""
    raw = np.asarray(raw, dtype=np.float64)
    columns = []
    for j, column in enumerate(treatment.columns):
        if column.kind == "category":
            levels = list(column.levels or [])
            columns.append(
                {"column": column.column, "levels": levels, "shares": _shares(level_counts(raw[:, j], levels))}
            )
        else:
            columns.append({"column": column.column, **bins_of(raw[:, j], COLUMN_PERCENTILES)})
    return {"rows": int(len(raw)), "distance": bins_of(distance, DISTANCE_PERCENTILES), "columns": columns}


def psi(expected: list[float] | np.ndarray, counts: np.ndarray, smoothing: float = SMOOTHING) -> float:
    """PSI of a window's bin counts against the expected shares (each floored at FLOOR, then renormalised)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), FLOOR)
    e = e / e.sum()
    c = np.asarray(counts, dtype=np.float64) + smoothing
    a = c / c.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _log_choose(n: int, k: np.ndarray) -> np.ndarray:
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    return math.lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def fisher_upper_tail(window_flagged: int, window_rows: int, test_flagged: int, test_rows: int) -> float:
    """One-sided Fisher's exact test that the window flags a larger share than the test set did: P(X >= window_flagged)
    for X ~ Hypergeometric(test_rows + window_rows rows, test_flagged + window_flagged flagged, window_rows drawn)."""
    rows, flagged = test_rows + window_rows, test_flagged + window_flagged
    if window_rows <= 0 or flagged <= 0 or window_flagged <= 0:
        return 1.0
    x = np.arange(window_flagged, min(flagged, window_rows) + 1, dtype=np.float64)
    log_pmf = (
        _log_choose(flagged, x)
        + _log_choose(rows - flagged, window_rows - x)
        - _log_choose(rows, np.array([window_rows], dtype=np.float64))
    )
    top = log_pmf.max()
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


@dataclass(frozen=True)
class Thresholds:
    psi: float = PSI_THRESHOLD
    flagged_p_value: float = FLAGGED_P_VALUE
    min_records: int = MIN_RECORDS
    watch: float = PSI_WATCH


@dataclass
class DriftResult:
    """One window against one report; ``drift`` None when the window is too small to say."""

    records: int
    flagged: int
    expected_flagged_share: float
    flagged_p_value: float | None = None
    distance_psi: float | None = None
    column_psi: dict[str, float] = field(default_factory=dict)
    drift: bool | None = None
    findings: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.records if self.records else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "flagged": self.flagged,
            "flaggedShare": self.flagged_share,
            "expectedFlaggedShare": self.expected_flagged_share,
            "flaggedPValue": self.flagged_p_value,
            "distancePsi": self.distance_psi,
            "columnPsi": self.column_psi,
            "drift": self.drift,
            "findings": self.findings,
            "watch": self.watch,
        }


def compare(
    report_baseline: dict[str, Any] | None,
    test_flagged: int,
    test_rows: int,
    columns: list[str],
    raw: np.ndarray,
    distance: np.ndarray,
    anomaly: np.ndarray,
    thresholds: Thresholds,
) -> DriftResult:
    """A window (raw values in ``columns`` order, the distance each record was scored at, its anomaly flag)
    against the report: its baseline (None for a report written before baselines: only the flagged share is tested)
    and the evaluation's flagged count of its test rows."""
    n = len(distance)
    flagged = int(np.count_nonzero(anomaly))
    expected_flagged_share = test_flagged / test_rows if test_rows else 0.0
    result = DriftResult(records=n, flagged=flagged, expected_flagged_share=expected_flagged_share)
    if n < thresholds.min_records:
        result.findings.append(
            f"{n:,} records scored in the window, fewer than the {thresholds.min_records:,} a check needs"
        )
        return result
    found, watch = [], []
    result.flagged_p_value = fisher_upper_tail(flagged, n, test_flagged, test_rows)
    if result.flagged_p_value < thresholds.flagged_p_value:
        found.append(
            f"{flagged:,} of {n:,} records flagged ({result.flagged_share:.2%}) where the evaluation flagged "
            f"{test_flagged:,} of {test_rows:,} ({expected_flagged_share:.2%}; Fisher's exact p = "
            f"{result.flagged_p_value:.2g})"
        )
    if report_baseline is not None:
        bins = report_baseline["distance"]
        result.distance_psi = psi(bins["shares"], bin_counts(distance, bins["edges"]))
        measured = [("distances", result.distance_psi)]
        raw = np.asarray(raw, dtype=np.float64).reshape(n, len(columns))
        for item in report_baseline["columns"]:
            if item["column"] not in columns:
                continue
            values = raw[:, columns.index(item["column"])]
            if item.get("levels") is not None:
                counts = level_counts(values, item["levels"])
            else:
                counts = bin_counts(values, item["edges"])
            result.column_psi[item["column"]] = psi(item["shares"], counts)
            measured.append((item["column"], result.column_psi[item["column"]]))
        for name, value in measured:
            if value > thresholds.psi:
                found.append(f"PSI of {name} {value:.3f} (above {thresholds.psi:g})")
            elif value > thresholds.watch:
                watch.append(f"PSI of {name} {value:.3f} (above {thresholds.watch:g}: watch)")
    result.findings, result.watch, result.drift = found, watch, bool(found)
    return result
