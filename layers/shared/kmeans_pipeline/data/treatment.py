"""Feature treatments: how the CSV's feature columns become the model's features, learned once in the data step.

Per column (see :class:`~kmeans_pipeline.schemas.dataset.ColumnTreatment`):

- ``numeric``: the number as it is, or z-scored with the training set's mean and std;
- ``log``: ``log1p(x)`` z-scored, for non-negative amounts with a long right tail (a negative value is an error);
- ``category``: one 0/1 feature per level seen in the data (a level unseen at scoring time gives all zeros, and
  the caller is told);
- ``auto`` (the default): whole numbers with at most ``AUTO_CATEGORY_LEVELS`` distinct values are a category; a
  non-negative column whose 99th percentile is at least ``TAIL_RATIO`` times its median is log; anything else is
  numeric, z-scored. The decision and its reason are recorded with the dataset and in the report.

Then, unless the run says ``featureWeights: equal``, each feature is weighted by its correlations with the others
on the sample of training rows (:func:`correlation_weights`); the weights are part of the treatment.

The :class:`TreatmentLearner` sees every channel row once while the data step streams (levels, minimum and
integrality over all rows; mean, std and a fixed-size sample over the training rows: the rows with the smallest
sample keys, which the data step draws per window of the object, so ranges merge into the sample one pass would
keep), so memory stays constant. :func:`encode` is the one transform every consumer uses: the data step's second pass, evaluation,
the scoring API and the CLI.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from kmeans_pipeline.data.channels import FLOAT32_LIMIT, format_rows, parse_rows
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment, TreatmentKind

AUTO_CATEGORY_LEVELS = 10
MAX_CATEGORY_LEVELS = 64
TAIL_RATIO = 10.0
# The reservoir sample of training rows that the tail rule's percentiles come from: at most this many values.
SAMPLE_VALUES = 2_000_000
MAX_SAMPLE_ROWS = 100_000


class _Moments:
    """Mean, population standard deviation, minimum and maximum per column, merged block by block and part by part
    (Chan et al.'s pairwise update of each block's own centred sums), in float64.

    Shifted: the sums are of each value's distance to the first value seen (``shift``), so a column whose spread
    is tiny next to its mean (nanosecond timestamps, 1.7e18 +- 9e7) keeps every bit of its spread, also when parts
    with different shifts merge. No finite input overflows them: the data step refuses values beyond float32's
    range, whose squares are far inside float64's. A column whose values are all equal has a standard deviation of
    exactly 0.
    """

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.shift = np.zeros(dim)
        self._mean = np.zeros(dim)  # of the values minus shift
        self._m2 = np.zeros(dim)
        self.low = np.full(dim, np.inf)
        self.high = np.full(dim, -np.inf)

    def add(self, columns: np.ndarray) -> None:
        """Take in a block of values, a column per row of ``columns`` (contiguous: each sum runs along memory)."""
        n = columns.shape[1]
        if not n:
            return
        self.low, self.high = np.minimum(self.low, columns.min(1)), np.maximum(self.high, columns.max(1))
        if not self.count:
            self.shift = np.array(columns[:, 0], dtype=np.float64)
        y = columns - self.shift[:, None]
        mean = y.mean(1)
        self._combine(n, mean, ((y - mean[:, None]) ** 2).sum(1))

    def _combine(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Take in ``n`` values with this mean (minus ``shift``) and sum of squared distances to it."""
        total = self.count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def merge(self, other: _Moments) -> None:
        """Take in another part's moments, as if its values had been added here."""
        if not other.count:
            return
        self.low, self.high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)
        if not self.count:
            self.shift, self._mean, self._m2, self.count = other.shift, other._mean, other._m2, other.count
            return
        self._combine(other.count, (other.shift - self.shift) + other._mean, other._m2)

    def state(self) -> dict:
        """The moments as JSON-ready lists (exact: floats round-trip through JSON)."""
        return {
            "count": self.count,
            "shift": self.shift.tolist(),
            "mean": self._mean.tolist(),
            "m2": self._m2.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict) -> _Moments:
        moments = cls(len(state["shift"]))
        moments.count = int(state["count"])
        moments.shift, moments._mean, moments._m2, moments.low, moments.high = (
            np.asarray(state[k], dtype=np.float64) for k in ("shift", "mean", "m2", "low", "high")
        )
        return moments

    @property
    def mean(self) -> np.ndarray:
        return self.shift + self._mean

    @property
    def constant(self) -> np.ndarray:
        """True where every value seen is the same (or none was seen)."""
        return ~(self.low < self.high)

    @property
    def std(self) -> np.ndarray:
        std = np.sqrt(self._m2 / max(self.count, 1))
        return np.where(self.constant, 0.0, std)


class TreatmentLearner:
    """What the data step learns about each feature column while it streams the channels."""

    def __init__(self, seed: int | list[int] = 0) -> None:
        self._seed = seed
        self.rows = 0

    def _start(self, d: int) -> None:
        self.minimum = np.full(d, np.inf)
        self.integral = np.ones(d, dtype=bool)
        # Distinct values per column while there are few of them; None once a column has too many to be a category.
        self.levels: list[set[float] | None] = [set() for _ in range(d)]
        self.raw = _Moments(d)
        self.logged = _Moments(d)
        self._capacity = sample_capacity(d)
        # The rows kept are the first ``_held`` of these buffers, which grow (by doubling) to hold twice what it
        # keeps and a block: a block is copied in once, not the rows held with it.
        self._rows = np.empty((0, d))
        self._keys = np.empty(0)
        self._held = 0
        # It keeps the capacity + 1 smallest keys, so that it can count up to the capacity below any threshold up to
        # the largest it keeps (sample_threshold); once it has dropped rows, no smaller key than this bar was dropped.
        self._keep = self._capacity + 1
        self._bar = np.inf
        self._sorted = True
        self._sampled = 0
        self._rng = np.random.default_rng(self._seed)

    def state(self) -> dict | None:
        """What this learner saw, JSON-ready, but its sample (see ``keyed_sample``); None if it saw no rows.
        ``sampleFrom`` and ``sampleCounts``: how many of its sampled rows have a key below each threshold of
        SAMPLE_GRID, from the first it can count (a full sample counts only below its largest key)."""
        if not self.rows:
            return None
        keys, _ = self.keyed_sample()
        first = 0 if self._sampled <= self._keep else int(np.searchsorted(-SAMPLE_GRID, -keys[-1]))
        counts = np.searchsorted(keys, SAMPLE_GRID[first:])
        return {
            "rows": self.rows,
            "minimum": self.minimum.tolist(),
            "integral": self.integral.tolist(),
            "levels": [sorted(seen) if seen is not None else None for seen in self.levels],
            "raw": self.raw.state(),
            "logged": self.logged.state(),
            "sampled": self._sampled,
            "sampleFrom": first,
            "sampleCounts": counts[: int(np.count_nonzero(counts)) + 1].tolist(),
        }

    @property
    def sample(self) -> np.ndarray:
        """The training rows with the smallest keys, at most the capacity, by key: a uniform sample."""
        if not self.rows:
            return np.empty((0, 0))
        return self.keyed_sample()[1][: self._capacity]

    def keyed_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, rows) of the rows it keeps, by key: the training rows with the smallest keys, at most the
        capacity + 1."""
        if not self._sorted:
            self._compact()
            held = self._held
            order = np.argsort(self._keys[:held], kind="stable")
            self._keys, self._rows, self._sorted = self._keys[:held][order], self._rows[:held][order], True
        return self._keys, self._rows

    def _compact(self) -> None:
        if self._held > self._keep:
            kept = np.argpartition(self._keys[: self._held], self._keep - 1)[: self._keep]
            self._keys[: self._keep], self._rows[: self._keep] = self._keys[kept], self._rows[kept]
            self._held = self._keep
            self._bar = float(self._keys[: self._keep].max())

    @classmethod
    def merged(cls, states: list[dict], samples: list[tuple[np.ndarray, np.ndarray]], dim: int) -> TreatmentLearner:
        """One learner from parts' states (in file order) and the rows of their samples below the merged sample's
        threshold (``sample_threshold``), as (keys, rows): the sample is theirs by key, as one learner that saw
        every part's rows with the same keys would hold it."""
        learner = cls()
        learner._start(dim)
        for state in states:
            learner.rows += int(state["rows"])
            learner.minimum = np.minimum(learner.minimum, np.asarray(state["minimum"], dtype=np.float64))
            learner.integral &= np.asarray(state["integral"], dtype=bool)
            for j, seen in enumerate(state["levels"]):
                mine = learner.levels[j]
                if mine is None or seen is None:
                    learner.levels[j] = None
                    continue
                mine.update(seen)
                if len(mine) > MAX_CATEGORY_LEVELS:
                    learner.levels[j] = None
            learner.raw.merge(_Moments.from_state(state["raw"]))
            learner.logged.merge(_Moments.from_state(state["logged"]))
            learner._sampled += int(state["sampled"])
        drawn = [(keys, rows) for keys, rows in samples if len(keys)]
        if drawn:
            keys = np.concatenate([k for k, _ in drawn])
            order = np.argsort(keys, kind="stable")
            learner._keys, learner._rows = keys[order], np.concatenate([r for _, r in drawn])[order]
            learner._held = len(keys)
        return learner

    def add_text(self, text: bytes, *, train: bool, keys: np.ndarray | None = None) -> None:
        """Channel text (header-less rows of plain numbers), as the data step writes it; ``keys``: the training
        rows' sample keys (drawn here when not given)."""
        if text:
            self.add(parse_rows(text, text[: text.index(b"\n")].count(b",") + 1), train=train, keys=keys)

    def add(self, rows: np.ndarray, *, train: bool, keys: np.ndarray | None = None) -> None:
        if not len(rows):
            return
        if not self.rows:
            self._start(rows.shape[1])
        self.rows += len(rows)
        # A column at a time: numpy reduces along contiguous memory many times faster than down a matrix's columns.
        columns = np.ascontiguousarray(rows.T, dtype=np.float64)
        self.minimum = np.minimum(self.minimum, columns.min(1))
        self.integral &= (columns == np.round(columns)).all(1)
        for j, seen in enumerate(self.levels):
            if seen is None:
                continue
            seen.update(np.unique(columns[j]).tolist())
            if len(seen) > MAX_CATEGORY_LEVELS:
                self.levels[j] = None
        if train:
            self.raw.add(columns)
            self.logged.add(np.log1p(np.maximum(columns, 0.0)))
            self._take(rows, self._rng.random(len(rows)) if keys is None else keys)

    def _take(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Keep the rows whose keys may be among the capacity smallest (bottom-k sampling: every training row
        has the same chance to be in the sample, and the sample of several parts is the parts' samples merged)."""
        self._sampled += len(rows)
        below = keys < self._bar
        if not below.all():
            rows, keys = rows[below], keys[below]
        held, total = self._held, self._held + len(keys)
        if total > len(self._keys):
            size = min(max(2 * len(self._keys), total, 1024), 2 * self._keep + len(keys))
            grown_keys, grown_rows = np.empty(size), np.empty((size, self._rows.shape[1]))
            grown_keys[:held], grown_rows[:held] = self._keys[:held], self._rows[:held]
            self._keys, self._rows = grown_keys, grown_rows
        self._keys[held:total], self._rows[held:total] = keys, rows
        self._held = total
        self._sorted = False
        if total >= 2 * self._keep:
            self._compact()

    def decide(
        self, columns: list[str], requested: dict[str, TreatmentKind], standardize: bool | None
    ) -> FeatureTreatment:
        """Each column's treatment: what the run asked for, else (auto) what the data suggests, with the reason."""
        if not self.rows:
            self._start(len(columns))
        std_raw, std_log = self.raw.std, self.logged.std
        treated = []
        for j, column in enumerate(columns):
            kind: str = requested.get(column) or ("numeric" if standardize is not None else "auto")
            decided: Literal["auto", "requested"] = "auto" if kind == "auto" else "requested"
            reason = "requested"
            levels = self.levels[j]
            if kind == "auto":
                kind, reason = self._auto(j, levels)
            if kind == "category":
                if levels is None:
                    raise DataValidationError(
                        f"column {column}: more than {MAX_CATEGORY_LEVELS} distinct values, too many for a category "
                        "(treat it as numeric or log)"
                    )
                treated.append(
                    ColumnTreatment(
                        column=column, kind="category", levels=sorted(levels), decided=decided, reason=reason
                    )
                )
            elif kind == "log":
                if self.minimum[j] < 0:  # the data step refuses negative values of a log column with their line
                    raise DataValidationError(
                        f"column {column}: log needs values >= 0, the data has {self.minimum[j]:g}"
                    )
                treated.append(
                    ColumnTreatment(
                        column=column,
                        kind="log",
                        standardize=True,
                        mean=float(self.logged.mean[j]),
                        std=float(std_log[j]),
                        decided=decided,
                        reason=reason + self._constant(j),
                    )
                )
            else:
                scaled = True if decided == "auto" else bool(standardize)
                treated.append(
                    ColumnTreatment(
                        column=column,
                        kind="numeric",
                        standardize=scaled,
                        decided=decided,
                        reason=reason + (self._constant(j) if scaled else ""),
                        mean=float(self.raw.mean[j]) if scaled else None,
                        std=float(std_raw[j]) if scaled else None,
                    )
                )
        return FeatureTreatment(columns=treated)

    def _constant(self, j: int) -> str:
        """What the reason adds for a column whose training values are all equal: it is centred, not scaled."""
        if not self.raw.constant[j] or not self.raw.count:
            return ""
        return (
            f"; but every training row holds {self.raw.low[j]:.9g}: its standard deviation is 0, so it is centred "
            "(a feature of zeros), not scaled"
        )

    def _auto(self, j: int, levels: set[float] | None) -> tuple[str, str]:
        if self.integral[j] and levels is not None and 2 <= len(levels) <= AUTO_CATEGORY_LEVELS:
            shown = ", ".join(f"{v:g}" for v in sorted(levels))
            return "category", f"{len(levels)} distinct whole numbers ({shown}): a category, one-hot encoded"
        if self.minimum[j] >= 0 and len(self.sample):
            p50, p99 = np.percentile(self.sample[:, j], [50, 99])
            if p99 > 0 and (p50 <= 0 or p99 / p50 >= TAIL_RATIO):
                ratio = "above a median of 0" if p50 <= 0 else f"{p99 / p50:,.0f}x the median {p50:,.6g}"
                return "log", (
                    f"never negative, with a long right tail (99th percentile {p99:,.6g}, {ratio}): "
                    "log1p, then z-scored"
                )
        return "numeric", "numeric, z-scored with the training set's mean and standard deviation"


# ------------------------------------------------------------------------------------------------------------
# Applying a treatment
# ------------------------------------------------------------------------------------------------------------


# The thresholds a merged sample's keys are cut at: 64 per halving, from 1 (every row) down to 2**-40.
SAMPLE_GRID = 2.0 ** (-np.arange(64 * 40 + 1) / 64)


def sample_threshold(states: list[dict], capacity: int) -> int:
    """The index in SAMPLE_GRID of the largest threshold below which the parts (their learners' states) hold at
    most ``capacity`` sampled rows together: the merged sample is every training row with a key below it, the
    same rows whatever the parts (each part counts its own, and a part holding too many below a threshold cannot
    take part in it). The last threshold if none is small enough."""
    for j in range(max((int(state["sampleFrom"]) for state in states), default=0), len(SAMPLE_GRID)):
        total = 0
        for state in states:
            first, counts = int(state["sampleFrom"]), state["sampleCounts"]
            if j < first:
                break
            total += counts[j - first] if j - first < len(counts) else 0
        else:
            if total <= capacity:
                return j
    return len(SAMPLE_GRID) - 1


def sample_rows_below(state: dict, threshold: int) -> int:
    """How many of a part's sampled rows (by key) have a key below the threshold SAMPLE_GRID[threshold]."""
    first, counts = int(state["sampleFrom"]), state["sampleCounts"]
    if threshold < first:  # not reached by sample_threshold: it needs every part's count
        raise ValueError(f"a part counts its sample below threshold {first} onwards, not {threshold}")
    return counts[threshold - first] if threshold - first < len(counts) else 0


def sample_capacity(dim: int) -> int:
    """Rows one reservoir holds for rows of ``dim`` values."""
    return max(1000, min(MAX_SAMPLE_ROWS, SAMPLE_VALUES // max(dim, 1)))


def _scale(column: ColumnTreatment) -> tuple[float, float]:
    if not column.standardize:
        return 0.0, 1.0
    std = column.std or 0.0
    return float(column.mean or 0.0), (std if std > 0 else 1.0)


def encode(treatment: FeatureTreatment, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(model features float64 (n, feature_dim), unseen (n, columns) bool) of raw feature rows in column order.

    An unseen category level gives zeros in that column's features and True in ``unseen``. Negative values of a
    log column must have been refused before (``negative_log_values``).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(treatment.columns):
        raise ValueError(f"rows have shape {X.shape}, the treatment has {len(treatment.columns)} columns")
    out = np.empty((len(X), treatment.feature_dim))
    unseen = np.zeros(X.shape, dtype=bool)
    at = 0
    for j, column in enumerate(treatment.columns):
        x = X[:, j]
        if column.kind == "category":
            levels = np.asarray(column.levels or [], dtype=np.float64)
            hot = x[:, None] == levels[None, :]
            out[:, at : at + len(levels)] = hot * _weights(column)
            unseen[:, j] = ~hot.any(1)
        else:
            base = np.log1p(x) if column.kind == "log" else x
            mean, std = _scale(column)
            out[:, at] = (base - mean) / std * _weights(column)[0]
        at += column.width
    return out, unseen


def _weights(column: ColumnTreatment) -> np.ndarray:
    return np.asarray(column.weights if column.weights is not None else [1.0] * column.width, dtype=np.float64)


def negative_log_values(treatment: FeatureTreatment, X: np.ndarray) -> np.ndarray:
    """(n, columns) bool: True where a log column holds a negative value."""
    X = np.asarray(X, dtype=np.float64)
    logs = np.array([c.kind == "log" for c in treatment.columns])
    return (X < 0) & logs[None, :]


def _affine(treatment: FeatureTreatment) -> tuple[np.ndarray, np.ndarray]:
    """Per model feature, the (mean, std) that make it from its base value: feature = (base - mean) / std, with
    the feature's weight in the std; (0, 1 / weight) for one-hot features."""
    scales = [_scale(c) if c.kind != "category" else (0.0, 1.0) for c in treatment.columns]
    widths = [c.width for c in treatment.columns]
    mean = np.repeat([m for m, _ in scales], widths)
    std = np.repeat([s for _, s in scales], widths)
    weights = np.concatenate([_weights(c) for c in treatment.columns]) if treatment.columns else np.ones(0)
    return mean, std / weights


def to_base(treatment: FeatureTreatment, Z: np.ndarray) -> np.ndarray:
    """Model features (or centroids) with the standardisation undone: x, log1p(x) or the one-hot weights."""
    mean, std = _affine(treatment)
    return np.asarray(Z, dtype=np.float64) * std + mean


def from_base(treatment: FeatureTreatment, B: np.ndarray) -> np.ndarray:
    mean, std = _affine(treatment)
    return (np.asarray(B, dtype=np.float64) - mean) / std


def to_original(treatment: FeatureTreatment, Z: np.ndarray) -> np.ndarray:
    """Model features (or centroids) in the CSV's units, one value per column: a category gives its heaviest level."""
    B = to_base(treatment, np.atleast_2d(Z))
    out = np.empty((len(B), len(treatment.columns)))
    at = 0
    for j, column in enumerate(treatment.columns):
        if column.kind == "category":
            levels = np.asarray(column.levels or [np.nan])
            out[:, j] = levels[B[:, at : at + column.width].argmax(1)] if column.width else np.nan
        elif column.kind == "log":
            out[:, j] = np.expm1(B[:, at])
        else:
            out[:, j] = B[:, at]
        at += column.width
    return out


def axis_range(treatment: FeatureTreatment, centroid: np.ndarray, radius: float) -> list[dict]:
    """Per column, what lies within ``radius`` of ``centroid`` along that column alone, in the CSV's units.

    For a numeric or log column the interval [low, high] of values at most ``radius`` away with every other feature
    at the centroid; for a category, its heaviest level (where most of the cluster's records are).
    """
    base = to_base(treatment, np.atleast_2d(centroid))[0]
    original = to_original(treatment, np.atleast_2d(centroid))[0]
    _, stds = _affine(treatment)
    ranges, at = [], 0
    for j, column in enumerate(treatment.columns):
        if column.kind == "category":
            weights = base[at : at + column.width]
            ranges.append(
                {
                    "column": column.column,
                    "level": float(original[j]),
                    "weight": float(weights.max()) if column.width else None,
                }
            )
        else:
            std = float(stds[at])
            low, high = base[at] - radius * std, base[at] + radius * std
            if column.kind == "log":
                low, high = math.expm1(max(low, 0.0)), math.expm1(min(high, 700.0))
            ranges.append({"column": column.column, "low": float(low), "high": float(high)})
        at += column.width
    return ranges


# The sampled training rows the feature weights are measured on, at most (a correlation's standard error is then
# below 0.01), so that memory stays bounded however many features the one-hot levels make.
CORRELATION_ROWS = 20_000


def correlation_weights(treatment: FeatureTreatment, sample: np.ndarray) -> FeatureTreatment:
    """The treatment with each feature weighted by sqrt(the sum of its squared correlations with every feature,
    itself included) on a sample of training rows (raw, in column order), or as it is where the weights do not apply.

    A feature that moves with others (the columns that measure one property of a record) weighs more, up to the
    square root of the number of features; one that moves with nothing else (noise, a level of a code) weighs 1; a
    feature constant on the sample weighs 1. So a record far along what many columns measure together lies
    farther than one far on a single column of noise. Measured on issue 19's quality suite against equal weights
    (docs/benchmarks.md, fourth round). Applies when every numeric and log column is z-scored (weights compare
    spreads of 1) and there are at least two features. The learner's sample is by key, so its first
    ``CORRELATION_ROWS`` rows are a uniform sample too.
    """
    if any(c.kind != "category" and not c.standardize for c in treatment.columns) or treatment.feature_dim < 2:
        return treatment
    unweighted = treatment.model_copy(
        update={"columns": [c.model_copy(update={"weights": None}) for c in treatment.columns]}
    )
    Z, _ = encode(unweighted, np.asarray(sample)[:CORRELATION_ROWS])
    weights = np.ones(Z.shape[1])
    live = Z.std(0) > 0 if len(Z) > 1 else np.zeros(Z.shape[1], dtype=bool)
    if live.sum() >= 2:
        r = np.atleast_2d(np.corrcoef(Z[:, live], rowvar=False))
        weights[live] = np.sqrt((r**2).sum(0))
    weights = np.array([float(f"{w:.6g}") for w in weights])
    columns, at = [], 0
    for column in unweighted.columns:
        columns.append(column.model_copy(update={"weights": weights[at : at + column.width].tolist()}))
        at += column.width
    names = treatment.feature_names
    low, high = int(np.argmin(weights)), int(np.argmax(weights))
    reason = (
        f"each feature times sqrt(the sum of its squared correlations with every feature) on {len(Z):,} sampled "
        f"training rows (1: it moves with no other feature): from {weights[low]:.3g} ({names[low]}) to "
        f"{weights[high]:.3g} ({names[high]})"
    )
    return FeatureTreatment(columns=columns, weighting=reason)


def comparable(served: FeatureTreatment, new: FeatureTreatment) -> str | None:
    """Why two models' features cannot be compared (None when they can: same columns, kinds, levels, scaling).

    The means and stds may differ: scores are compared after mapping one model through both standardisations.
    """
    if served.input_columns != new.input_columns:
        return f"the serving model clusters {served.input_columns}, this one {new.input_columns}"
    for a, b in zip(served.columns, new.columns):
        if (a.kind, a.standardize) != (b.kind, b.standardize):
            was = f"{a.kind}{', z-scored' if a.standardize else ''}"
            now = f"{b.kind}{', z-scored' if b.standardize else ''}"
            return f"column {a.column} was treated as {was}, now as {now}"
        if a.kind == "category" and a.levels != b.levels:
            return f"column {a.column} had the levels {a.levels}, now {b.levels}"
    return None


def raw_numbers(columns: list[str]) -> FeatureTreatment:
    """The treatment that keeps the CSV's numbers as they are: each column one numeric feature, not scaled."""
    return FeatureTreatment(columns=[ColumnTreatment(column=c, kind="numeric") for c in columns])


class TreatedOutOfRange(ValueError):
    """A value that its treatment takes beyond float32's range: ``rows[row, column]`` of the rows given becomes
    ``treated``."""

    def __init__(self, row: int, column: int, value: float, treated: float) -> None:
        super().__init__(f"row {row}, column {column}: {value!r} becomes {treated:.4g} once treated")
        self.row, self.column, self.value, self.treated = row, column, value, treated


def first_out_of_range(treatment: FeatureTreatment, rows: np.ndarray) -> TreatedOutOfRange | None:
    """The first of ``rows`` (raw, in column order) that its treatment takes beyond float32's range, if any."""
    Z, _ = encode(treatment, rows)
    bad = ~(np.abs(Z) < FLOAT32_LIMIT)
    if not bad.any():
        return None
    row, feature = (int(i) for i in np.argwhere(bad)[0])
    column = int(np.searchsorted(np.cumsum([c.width for c in treatment.columns]), feature, side="right"))
    return TreatedOutOfRange(row, column, float(rows[row, column]), float(Z[row, feature]))


def channel_text(treatment: FeatureTreatment, rows: np.ndarray) -> bytes:
    """Raw channel rows, treated, as channel text (float32 values, written as ``channels.format_rows`` does);
    TreatedOutOfRange if a treated value is beyond float32's range (a z-score with a tiny standard deviation)."""
    Z, _ = encode(treatment, rows)
    if not (np.abs(Z) < FLOAT32_LIMIT).all():
        raise first_out_of_range(treatment, rows) or AssertionError("an out-of-range value went missing")
    return format_rows(Z)
