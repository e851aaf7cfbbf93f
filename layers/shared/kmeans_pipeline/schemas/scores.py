"""The JSON of batch scoring: the scoring state machine's input, the items its Distributed Map reads from S3, what
each worker writes back for the summary, and the summary announced on the topic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kmeans_pipeline.schemas.base import CamelModel
from kmeans_pipeline.schemas.dataset import SourceObject


class ScoreItem(CamelModel):
    """One range of the file to score (a gzip file is one item, read whole), and the model the batch pinned."""

    index: int = Field(ge=0)
    source: SourceObject
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    gzip: bool = False
    name: str = Field(description="The batch's name: the file's key under score/ without its extension.")
    prefix: str = Field(description="Where the batch's files go: scores/<name>/<execution>/, its own.")
    endpoint_config: str = Field(description="The endpoint config serving when the batch was planned.")
    again_from: int | None = None


class ScorePlan(CamelModel):
    """What the plan returns: where its items are, never the items themselves."""

    name: str
    execution: str = Field(description="The scoring execution's name: each execution has a folder of its own.")
    prefix: str = Field(description="scores/<name>/<execution>/: the batch's part files, summary and work/.")
    source: SourceObject
    items_bucket: str
    items_key: str
    ranges: int = Field(ge=1)
    model: str
    endpoint_config: str


class ClusterCount(CamelModel):
    """The records scored against one cluster (their closest, or, for a record closest to a cluster its run called
    small, the nearest other one: ``reference_cluster``), and how many of them are flagged."""

    cluster: int
    records: int
    flagged: int


class ScoreRangeResult(CamelModel):
    """One range as its worker read and scored it: where its rows start and end, both readings of its quote states
    (see kmeans_pipeline.data.ranges), its counts and its part file, or its first problem (lines from its own)."""

    index: int
    start: int
    end: int
    aligned_end: int
    line_base: int
    lines: int
    ends_inside: bool = False
    ends_inside_if_inside: bool = True
    record_if_inside: int | None = None
    complete: bool = True
    records: int = 0
    scored: int = 0
    flagged: int = 0
    errors: int = 0
    referred: int = 0  # records scored against another cluster than their closest (it is small)
    unseen_levels: int = 0  # records with a category level the model never saw (their warnings column says which)
    clusters: dict[str, list[int]] = Field(default_factory=dict)  # cluster scored against -> [records, flagged]
    part_key: str | None = None
    error: str | None = None
    model_changed: str | None = Field(
        default=None, description="The endpoint served another model than the batch's before or after the range."
    )


class ScoreSummary(CamelModel):
    """A scored batch: where its parts are, the model that scored it, and its counts (per cluster scored against)."""

    name: str
    execution: str
    source: str
    output: str = Field(description="The batch's folder, s3://<bucket>/scores/<name>/<execution>/: its part files.")
    summary: str
    model: str
    endpoint_config: str
    parts: int
    records: int
    scored: int
    flagged: int
    errors: int
    referred: int = Field(description="Records closest to a small cluster, scored against the nearest other one.")
    unseen_levels: int = Field(description="Records with a category level the model never saw (scored all the same).")
    clusters: list[ClusterCount] = Field(description="Per cluster scored against: its records and flagged ones.")


class ScoreMerge(CamelModel):
    """The summary step's verdict: read some ranges again (their items at ``items_key``), or the batch is done."""

    next: Literal["again", "done"]
    items_bucket: str | None = None
    items_key: str | None = None
    items: int = 0
    summary: ScoreSummary | None = None
