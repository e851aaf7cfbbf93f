"""The evaluation report: what "Evaluate model" writes to ``reports/<run id>/report.json`` and every reader reads.

One model, built by the evaluation step and validated by each reader (the gate reading the serving model's report,
the scoring API, ``kmeans_cli``, the demo's view). A field is added here, with a default, and set where Evaluate
computes it: readers get it by name, and reports written before it existed still validate (the serving model's
report was written by the release that trained it). Keys a reader does not know are ignored, so a report written by
a later release stays readable by the one serving; a change that old readers would misread (a field removed or
meaning something else) raises ``SCHEMA_VERSION``.

The JSON is camelCase (``docs/usage.md``, "The report"). Distances and thresholds are in the model's units (the
features its treatment makes); ``centroids``, each cluster's ``centroid`` and ``normalRange`` in the CSV's units.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from kmeans_pipeline.schemas.base import CamelModel
from kmeans_pipeline.schemas.dataset import FeatureTreatment, KChoice, SourceObject
from kmeans_pipeline.schemas.results import GateDecision
from kmeans_pipeline.schemas.run import SmallClusters

SCHEMA_VERSION = 2
# A report is a few MB at most (k clusters, one record or range per column each): anything bigger is another file.
MAX_REPORT_BYTES = 64 * 1024 * 1024

Threshold = Annotated[float | None, Field(allow_inf_nan=False)]


class ReportError(ValueError):
    """A report that is not an evaluation report this release reads; the message names the report and the field."""


class ReportModel(CamelModel):
    model_config = ConfigDict(extra="ignore")


class ReportDataset(ReportModel):
    train_uri: str
    test_uri: str
    raw_test_uri: str | None
    train_rows: int
    test_rows: int
    source: SourceObject


class Distances(ReportModel):
    """Distance percentiles (linear interpolation); None without records."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None


class SmallClusterDecision(ReportModel):
    """One small cluster and what it was taken for (model.clusters.judge_small_clusters): anomalous (its records
    are scored against the nearest large cluster) or a kind of record, with the category level that explains it."""

    index: int
    training_rows: int
    anomalous: bool
    reason: str
    column: str | None = None
    level: float | None = None
    level_share: float | None = None
    share_of_level: float | None = None
    large_cluster: int | None = None


class SmallClusterRule(ReportModel):
    rule: SmallClusters
    # The small clusters whose records are scored against the nearest large cluster.
    clusters: list[int]
    large_share: float
    size_ratio: float
    explained_share: float | None = None
    decisions: list[SmallClusterDecision] = Field(default_factory=list)


class Thresholds(ReportModel):
    overall: Threshold
    per_cluster: list[Threshold]
    rule: str | None = None


class Flagged(ReportModel):
    per_cluster: int
    per_cluster_share: float
    overall: int
    overall_share: float


class NumericRange(ReportModel):
    """What lies within the threshold along a numeric or log column alone, in the CSV's units."""

    column: str
    low: float
    high: float


class CategoryRange(ReportModel):
    """A category column's heaviest level in the cluster, and its one-hot weight."""

    column: str
    level: float
    weight: float | None


class ReportRecord(ReportModel):
    values: dict[str, float]
    distance: float
    score: float


class ClusterReport(ReportModel):
    index: int
    size: int
    share: float
    distance: Distances
    threshold: Threshold
    own_threshold: float | None
    small: bool
    closest_share: float
    normal_range: list[NumericRange | CategoryRange] | None
    flagged_share: float
    nearest_inside: ReportRecord | None
    farthest_beyond: ReportRecord | None
    centroid: list[float]


class Bins(ReportModel):
    """Bins (-inf, e1], (e1, e2], ..., (em, inf) of the inner edges, and the share of the test records in each."""

    edges: list[float]
    shares: list[float]


class ColumnBins(ReportModel):
    """A feature column's test values in bins (numeric, log: ``edges``; category: ``levels``, then one bin for levels
    unseen in training), in the CSV's units."""

    column: str
    edges: list[float] | None = None
    levels: list[float] | None = None
    shares: list[float]


class Baseline(ReportModel):
    """What a drift check compares live traffic with (model.drift.baseline): the test records' distances and
    feature values in bins."""

    rows: int
    distance: Bins
    columns: list[ColumnBins]


class EvaluationReport(ReportModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    execution_name: str
    training_job: str
    hyperparameters: dict[str, str]
    model_artifact: str
    dataset: ReportDataset
    feature_columns: list[str] = Field(min_length=1)
    treatment: FeatureTreatment
    feature_names: list[str]
    k: int = Field(ge=1)
    # Where k comes from (the run, the stack, the data) and, from the data, every candidate's criterion.
    k_choice: KChoice | None = None
    test_msd: float
    evaluation_msd: float
    evaluated_rows: int
    anomaly_percentile: float
    small_clusters: SmallClusterRule
    thresholds: Thresholds
    centroids: list[list[float]]
    model_centroids: list[list[float]]
    clusters: list[ClusterReport]
    distance: Distances
    flagged: Flagged
    gate: GateDecision
    headline: str
    # Reports written before drift checks have none: a check then tests the flagged share only.
    baseline: Baseline | None = None

    @field_validator("schema_version")
    @classmethod
    def _this_version(cls, version: int) -> int:
        if version != SCHEMA_VERSION:
            raise ValueError(f"this release reads version {SCHEMA_VERSION}, the report is version {version}")
        return version

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """What scoring relies on: the columns, the treatment, k thresholds and k centroids agree."""
        columns = self.feature_columns
        if len(set(columns)) != len(columns):
            raise ValueError(f"featureColumns {columns} repeats a name")
        if self.treatment.input_columns != columns:
            raise ValueError(f"treatment columns {self.treatment.input_columns} are not featureColumns {columns}")
        if len(self.thresholds.per_cluster) != self.k:
            raise ValueError(f"thresholds.perCluster has {len(self.thresholds.per_cluster)} values for k={self.k}")
        if any(not 0 <= i < self.k for i in self.small_clusters.clusters):
            raise ValueError(
                f"smallClusters.clusters {self.small_clusters.clusters} are not clusters of 0..{self.k - 1}"
            )
        dim = self.treatment.feature_dim
        if len(self.model_centroids) != self.k or any(len(c) != dim for c in self.model_centroids):
            raise ValueError(f"modelCentroids must be k={self.k} centroids of the treatment's {dim} features")
        return self

    @property
    def has_thresholds(self) -> bool:
        return self.thresholds.overall is not None or any(t is not None for t in self.thresholds.per_cluster)


class FinalComparison(ReportModel):
    """What "Compare with the model serving now" writes beside the report (``reports/<run id>/final-comparison.json``)
    when a run compares again under the deploy lease: the gate against the model serving at that moment. The report
    the version registered (``report_uri``, SHA-256 ``report_digest``) is not rewritten, so its digest stays true."""

    run_id: str
    execution_name: str
    report_uri: str
    report_digest: str
    evaluated_rows: int
    strictly_better: bool
    gate: GateDecision
    headline: str


def read_report(data: bytes | str | Mapping[str, Any] | EvaluationReport, source: str) -> EvaluationReport:
    """The report in ``data`` (its JSON text or the parsed object), or ReportError naming ``source`` and the field."""
    if isinstance(data, EvaluationReport):
        return data
    if isinstance(data, bytes | str):
        if len(data) > MAX_REPORT_BYTES:
            raise ReportError(f"report {source} is over {MAX_REPORT_BYTES:,} bytes: not an evaluation report")
        try:
            data = json.loads(data)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ReportError(f"report {source} is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ReportError(f"report {source} is not a JSON object")
    try:
        return EvaluationReport.model_validate(data)
    except ValidationError as exc:
        raise ReportError(f"report {source} is not a valid evaluation report: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    """One problem per field, named as in the JSON; a problem of the report as a whole names its fields itself."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
