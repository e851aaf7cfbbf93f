"""What the data step learns and writes: the source object, each column's treatment, and the dataset's URIs."""

from __future__ import annotations

import hashlib
import math
from typing import Literal

from pydantic import Field, model_validator

from kmeans_pipeline.schemas.base import CamelModel

# How a feature column becomes model features (see ColumnTreatment); auto lets the data step decide.
TreatmentKind = Literal["auto", "numeric", "log", "category"]


class SourceObject(CamelModel):
    """The raw input: one object, or (``parts`` above 1) every object under a prefix, its ETag then a digest of
    theirs and its size their sum."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str
    size: int
    parts: int = 1


def combined_source(parts: list[SourceObject], bucket: str, key: str) -> SourceObject:
    """The input as one SourceObject: the object itself, or a prefix's parts as one (their ETags digested)."""
    if len(parts) == 1 and not key.endswith("/"):
        return parts[0]
    digest = hashlib.sha256("".join(f"{p.key}\n{p.etag}\n" for p in parts).encode()).hexdigest()
    return SourceObject(
        bucket=bucket, key=key, etag=f"parts-{digest[:32]}", size=sum(p.size for p in parts), parts=len(parts)
    )


class ColumnTreatment(CamelModel):
    """How one CSV column becomes model features: numeric (x), log (log1p(x)) or category (one-hot over levels).

    A standardised numeric or log column is (base - mean) / std with the training set's mean and std of its base
    value (x, or log1p(x)); a std of 0 counts as 1. A category gives one 0/1 feature per level.
    """

    column: str
    kind: Literal["numeric", "log", "category"]
    standardize: bool = False
    mean: float | None = None
    std: float | None = None
    levels: list[float] | None = None
    decided: Literal["auto", "requested"] = "requested"
    reason: str = ""
    # Each of the column's features (one, or one per level) is multiplied by its weight once standardised (one-hot:
    # the 0/1 value); None: 1 for each (data.treatment.correlation_weights).
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check_weights(self) -> ColumnTreatment:
        if self.weights is not None and (
            len(self.weights) != self.width or not all(math.isfinite(w) and w > 0 for w in self.weights)
        ):
            raise ValueError(
                f"column {self.column}: weights must be {self.width} positive numbers, one per feature, "
                f"got {self.weights}"
            )
        return self

    @property
    def width(self) -> int:
        return len(self.levels or []) if self.kind == "category" else 1

    @property
    def feature_names(self) -> list[str]:
        if self.kind == "category":
            return [f"{self.column}={level:g}" for level in self.levels or []]
        return [f"log1p({self.column})" if self.kind == "log" else self.column]


class FeatureTreatment(CamelModel):
    """The per-column treatments of a dataset, in channel order: what the model's features are."""

    columns: list[ColumnTreatment]
    # How the features were weighted, and why (data.treatment.correlation_weights); empty: not weighted.
    weighting: str = ""

    @property
    def input_columns(self) -> list[str]:
        return [c.column for c in self.columns]

    @property
    def feature_dim(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def feature_names(self) -> list[str]:
        return [name for c in self.columns for name in c.feature_names]

    @property
    def is_identity(self) -> bool:
        """True when the model's features are the CSV's numbers as they are (nothing to transform)."""
        return all(c.kind == "numeric" and not c.standardize for c in self.columns)


class KCandidate(CamelModel):
    """One k the data step tried: its Davies-Bouldin index (None where two clusters coincided) and the size of its
    smallest cluster on the sample."""

    k: int
    davies_bouldin: float | None
    smallest_cluster: int


class KChoice(CamelModel):
    """The k this run clusters with and where it comes from: the run's input, the stack's DefaultK, or the data
    (every candidate's criterion, and why the chosen one won)."""

    k: int = Field(ge=2, le=1000)
    source: Literal["run", "stack", "data"]
    reason: str
    criterion: str | None = None
    candidates: list[KCandidate] = Field(default_factory=list)
    sample_rows: int = 0


class Dataset(CamelModel):
    """What the data step wrote: S3 URIs and counts, never data."""

    train_uri: str
    test_uri: str
    train_rows: int
    test_rows: int
    train_shards: int = Field(default=1, ge=1, description="Objects the training channel was written as.")
    # How the feature columns became the model's features, and (when they were transformed) where the raw test
    # rows are, in the same order as the transformed ones.
    treatment: FeatureTreatment | None = None
    raw_test_uri: str | None = None
    skipped_blank_lines: int
    feature_columns: list[str]
    feature_dim: int
    content_type: str
    source: SourceObject
    # The number of clusters to train (the run's, the stack's, or chosen from this data), and why.
    k_choice: KChoice

    @property
    def k(self) -> int:
        return self.k_choice.k
