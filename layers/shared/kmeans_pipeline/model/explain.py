"""Why a flagged record is flagged: the features or levels that put it beyond its threshold, in the CSV's units,
against its cluster's normal range from the evaluation report. No second model: the report's treatment, model
centroids and per-cluster normal ranges (``normalRange``) are all it reads.

The rule, for a record scored against cluster c (its closest cluster, or the nearest large one when the closest is
small):

1. each column's part of the squared distance to c (a category's one-hot features summed) orders the columns;
2. a numeric or log column is named when its value lies outside c's normal range for it; a category column when
   its level was not seen in training, or is not the level most of c's records have;
3. when a category column is named for its level and that level has clusters of its own (clusters whose records
   mostly have it), the record is also measured against the nearest of those, and its numeric columns outside
   *that* cluster's range are named first: a $9,000 card purchase is closest to the wire transfers, and what makes
   it unusual is its amount for a card purchase, not that it is not a wire transfer;
4. a record with every value inside c's ranges is unusual for the combination: the column with the largest part
   of the distance is named, "jointly".

On the demo's sample every injected anomaly (an amount far from its line of business) is explained by Amount first
(tests/unit/test_explain.py; docs/usage.md, "Why a record is flagged").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kmeans_pipeline.schemas.report import CategoryRange, EvaluationReport, NumericRange


def number(value: float) -> str:
    """A value in the CSV's units as a person reads it: 14,548; 226; 35.47; 0.0123."""
    v = float(value)
    if not np.isfinite(v):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1 or v == 0:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


@dataclass(frozen=True)
class Reason:
    """One feature or level that puts a record beyond its threshold."""

    column: str
    value: float
    kind: str  # "range": outside a cluster's normal range; "level": not the cluster's level; "unseen"; "jointly"
    cluster: int  # whose normal range or level the value is compared with
    text: str
    low: float | None = None
    high: float | None = None
    level: float | None = None
    share: float | None = None  # the column's part of the squared distance to the record's reference cluster

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column, "value": self.value, "kind": self.kind, "cluster": self.cluster}
        for name in ("low", "high", "level", "share"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out["text"] = self.text
        return out


@dataclass(frozen=True)
class Explanation:
    reasons: list[Reason] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "; ".join(r.text for r in self.reasons)

    @property
    def columns(self) -> list[str]:
        return [r.column for r in self.reasons]


class Explainer:
    """Explanations of records scored with one report's model (built once per model, used per flagged record)."""

    def __init__(self, report: EvaluationReport) -> None:
        self.treatment = report.treatment
        self.columns = report.treatment.columns
        self.centroids = np.asarray(report.model_centroids, dtype=np.float64)
        bounds = np.cumsum([0] + [c.width for c in self.columns])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        small = set(report.small_clusters.clusters)
        # Per cluster, per column: its normal range ((low, high) or its level), None where the report has none.
        self.ranges: list[list[NumericRange | CategoryRange] | None] = []
        for cluster in report.clusters:
            ranges = cluster.normal_range
            self.ranges.append(list(ranges) if ranges is not None and len(ranges) == len(self.columns) else None)
        # Per category column: level -> the clusters (not small-and-anomalous) whose records mostly have it.
        self.level_clusters: dict[int, dict[float, list[int]]] = {}
        for j, column in enumerate(self.columns):
            if column.kind != "category":
                continue
            owners: dict[float, list[int]] = {}
            for index, ranges in enumerate(self.ranges):
                if ranges is None or index in small:
                    continue
                item = ranges[j]
                if isinstance(item, CategoryRange):
                    owners.setdefault(float(item.level), []).append(index)
            self.level_clusters[j] = owners

    # -- the parts of the rule ------------------------------------------------------------------------------
    def _shares(self, z: np.ndarray, cluster: int) -> np.ndarray:
        parts = (z - self.centroids[cluster]) ** 2
        per_column = np.array([parts[s].sum() for s in self.slices])
        total = per_column.sum()
        return per_column / total if total > 0 else np.zeros(len(per_column))

    def _numeric(self, j: int, value: float, cluster: int, whose: str) -> Reason | None:
        """``whose`` says whose range it is, with ``{range}`` where the range goes."""
        ranges = self.ranges[cluster]
        item = ranges[j] if ranges is not None else None
        if not isinstance(item, NumericRange) or item.low <= value <= item.high:
            return None
        name = self.columns[j].column
        return Reason(
            name,
            value,
            "range",
            cluster,
            f"{name} {number(value)} where {whose.format(range=f'{number(item.low)}-{number(item.high)}')}",
            low=item.low,
            high=item.high,
        )

    def _category(self, j: int, value: float, unseen: bool, cluster: int) -> Reason | None:
        name = self.columns[j].column
        if unseen:
            return Reason(name, value, "unseen", cluster, f"{name} {number(value)}: a level not seen in training")
        ranges = self.ranges[cluster]
        item = ranges[j] if ranges is not None else None
        if not isinstance(item, CategoryRange) or float(item.level) == value:
            return None
        return Reason(
            name,
            value,
            "level",
            cluster,
            f"{name} {number(value)} where cluster {cluster}'s records are {name} {number(item.level)}",
            level=float(item.level),
        )

    def _own_level(self, j: int, value: float, z: np.ndarray, raw: np.ndarray) -> list[Reason]:
        """The numeric columns outside the range of the nearest cluster whose records mostly have this level."""
        owners = self.level_clusters.get(j, {}).get(value)
        if not owners:
            return []
        nearest = owners[int(np.argmin([((z - self.centroids[k]) ** 2).sum() for k in owners]))]
        name = self.columns[j].column
        whose = f"{name} {number(value)}'s normal range (cluster {nearest}) is {{range}}"
        found = []
        for i, column in enumerate(self.columns):
            if column.kind != "category":
                reason = self._numeric(i, float(raw[i]), nearest, whose)
                if reason is not None:
                    found.append(reason)
        return found

    # -- the rule -----------------------------------------------------------------------------------------------
    def explain(self, raw: np.ndarray, z: np.ndarray, unseen: np.ndarray, cluster: int) -> Explanation:
        """Why the record (raw values in column order, its model features, which category levels were unseen) is
        beyond the threshold of ``cluster``, the cluster it is scored against."""
        raw = np.asarray(raw, dtype=np.float64)
        z = np.asarray(z, dtype=np.float64)
        shares = self._shares(z, cluster)
        named: list[Reason] = []
        first: list[Reason] = []
        for j in np.argsort(-shares, kind="stable").tolist():
            column, value = self.columns[j], float(raw[j])
            if column.kind == "category":
                reason = self._category(j, value, bool(unseen[j]), cluster)
                if reason is not None and reason.kind == "level" and not first:
                    first = self._own_level(j, value, z, raw)
            else:
                reason = self._numeric(j, value, cluster, f"cluster {cluster}'s normal range is {{range}}")
            if reason is not None:
                named.append(_with_share(reason, float(shares[j])))
        if first:
            named = first + [r for r in named if r.kind != "range"]
        if named:
            return Explanation(named)
        j = int(np.argmax(shares))
        name, value = self.columns[j].column, float(raw[j])
        return Explanation(
            [
                Reason(
                    name,
                    value,
                    "jointly",
                    cluster,
                    f"{name} {number(value)} with the record's other values: each is within cluster {cluster}'s "
                    "normal range, the combination is beyond its threshold",
                    share=float(shares[j]),
                )
            ]
        )

    def explain_many(
        self, raw: np.ndarray, Z: np.ndarray, unseen: np.ndarray, reference: np.ndarray
    ) -> list[Explanation]:
        """``explain`` for each row (all four arrays row-aligned)."""
        return [self.explain(raw[r], Z[r], unseen[r], int(reference[r])) for r in range(len(reference))]


def _with_share(reason: Reason, share: float) -> Reason:
    return Reason(**{**reason.__dict__, "share": share})
