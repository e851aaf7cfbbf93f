"""The JSON of the data step's plan, map and reduce: the items the Distributed Maps read from S3, and what each worker
writes back to S3 for the reduce. Only small summaries travel in the execution; these live under the run's
``datasets/<run id>/work/``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from kmeans_pipeline.schemas.base import CamelModel
from kmeans_pipeline.schemas.dataset import SourceObject
from kmeans_pipeline.schemas.settings import WINDOW_BYTES


class RangeItem(CamelModel):
    """One item of a plan: the bytes ``[start, end)`` of one object (a gzip object is one item, read whole)."""

    index: int = Field(ge=0, description="The range's place in file order, across every object of the input.")
    part: int = Field(ge=0, description="The object's place in the input (0 for a single object).")
    source: SourceObject
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    gzip: bool = False
    lanes: int = Field(default=1, ge=1, description="Training-channel lanes this range writes (see ShardedChannel).")
    window_bytes: int = Field(
        default=WINDOW_BYTES,
        ge=1,
        description="The split's unit: the rows that start in each window are split together.",
    )
    again_from: int | None = Field(
        default=None, description="Read again from this row start: the first reading assumed wrong where rows start."
    )


class DataPlan(CamelModel):
    """What the plan step returns: where its items are, and how many (never the items themselves)."""

    items_uri: str
    items_bucket: str
    items_key: str
    ranges: int = Field(ge=1)
    parts: int = Field(ge=1)
    bytes: int = Field(ge=0)
    range_bytes: int = Field(ge=1)
    feature_columns: list[str]


class RangeResult(CamelModel):
    """What a worker read of its range: where its rows start and end, its counts, its channel objects, the
    statistics the reduce merges, both readings of its quote states, and its first problem (lines counted from
    its own first line, see ``line_base``)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    index: int
    part: int
    start: int
    end: int
    aligned_end: int
    line_base: int = Field(description="The number this worker gave its first line (1; 2 for a gzip object).")
    lines: int
    train_rows: int = 0
    test_rows: int = 0
    blank_lines: int = 0
    strata: dict[str, int] | None = None  # hex of each stratum value -> its rows
    first_row: str | None = None  # channel text of the first row, and whether any row differs from it
    varied: bool = False
    learner: dict[str, Any] | None = None  # TreatmentLearner.state()
    sample_key: str | None = None
    sample_rows: int = 0
    ends_inside: bool = False
    ends_inside_if_inside: bool = True
    record_if_inside: int | None = None
    complete: bool = True
    train_keys: list[str] = Field(default_factory=list)
    test_keys: list[str] = Field(default_factory=list)
    error: str | None = None


class TreatItem(CamelModel):
    """One item of the second map: a piece's raw channel objects to write treated, and where its rows are in the
    source (to name the line of a value its treatment takes out of float32's range)."""

    index: int
    lanes: int = 1
    train_keys: list[str]
    test_keys: list[str]
    source: SourceObject
    start: int
    end: int
    gzip: bool = False
    lines_before: int
    named: bool = Field(default=False, description="The input has several parts: a problem names its object.")


class TreatResult(CamelModel):
    index: int
    train_keys: list[str] = Field(default_factory=list)
    test_keys: list[str] = Field(default_factory=list)
    error: str | None = None


class MergeResult(CamelModel):
    """The reduce's verdict: read some ranges again (``again``: their items at ``items_uri``), write the treated
    features (``treat``: the second map's items), or the dataset is ready (``done``)."""

    next: Literal["again", "treat", "done"]
    items_uri: str | None = None
    items_bucket: str | None = None
    items_key: str | None = None
    items: int = 0
    train_rows: int = 0
    test_rows: int = 0
