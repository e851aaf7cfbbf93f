"""How much of Step Functions' 256 KiB per payload a run's description may take.

Step Functions carries at most 262,144 bytes in a state's input, output or result; past that the state fails with
States.DataLimitExceeded, which no Catch catches (the run would end without its cause or the endpoint's state). The
largest payloads this state machine sends are the run configuration and the dataset description together (to Start
hyperparameter tuning, Evaluate model, Verify endpoint), plus smaller results. Both grow with the feature columns:
about 300 bytes a column in the dataset (its name twice, its treatment and the reason for it), about 600 for a
category of 64 levels. So the run refuses, with a clear cause, a description over ``RUN_DESCRIPTION_BUDGET``: at
Resolve when the configuration names columns that cannot fit even as raw numbers, in the data step once the
treatments are known. The 56 KiB left over hold the rest of any payload (evaluation, model, verification, lease).
"""

from __future__ import annotations

import json

from kmeans_pipeline.schemas.base import CamelModel
from kmeans_pipeline.schemas.dataset import ColumnTreatment, Dataset, FeatureTreatment, KChoice, SourceObject
from kmeans_pipeline.schemas.run import RunConfig

STATE_PAYLOAD_LIMIT = 262_144
RUN_DESCRIPTION_BUDGET = 200 * 1024


def payload_bytes(*parts: CamelModel) -> int:
    """The bytes the parts take as one JSON payload (UTF-8, with the separators json.dumps writes: an upper bound
    on what Step Functions counts)."""
    return len(json.dumps([part.to_json() for part in parts], ensure_ascii=False).encode())


def smallest_dataset(columns: list[str]) -> Dataset:
    """The smallest dataset description these feature columns can have: raw numbers, short URIs, no reasons."""
    return Dataset(
        train_uri="s3://b/t/",
        test_uri="s3://b/s/",
        train_rows=0,
        test_rows=0,
        treatment=FeatureTreatment(columns=[ColumnTreatment(column=c, kind="numeric") for c in columns]),
        skipped_blank_lines=0,
        feature_columns=columns,
        feature_dim=len(columns),
        content_type="text/csv;label_size=0",
        source=SourceObject(bucket="b", key="k", etag="e", size=0),
        k_choice=KChoice(k=2, source="run", reason=""),
    )


def too_large(config: RunConfig, dataset: Dataset | None = None) -> str | None:
    """Why this run's configuration and dataset description do not fit the budget, or None. Without a dataset (at
    Resolve), the smallest one the configuration's feature columns can have."""
    columns = dataset.feature_columns if dataset is not None else list(config.feature_columns or [])
    measured = payload_bytes(config, dataset if dataset is not None else smallest_dataset(columns))
    if measured <= RUN_DESCRIPTION_BUDGET:
        return None
    what = "take" if dataset is not None else "would take at least"
    return (
        f"the run's configuration and dataset description {what} {measured:,} bytes for {len(columns):,} feature "
        f"columns, over the {RUN_DESCRIPTION_BUDGET:,} bytes this pipeline allows them: Step Functions carries at "
        f"most {STATE_PAYLOAD_LIMIT:,} bytes between states, and the run passes them together (about 300 bytes a "
        "column, 600 for a category). Choose fewer columns with featureColumns (or the stack's FeatureColumns)"
    )
