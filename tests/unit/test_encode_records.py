"""What the scoring API and batch scoring send the endpoint: the data step's rules for numbers, float32 included."""

from __future__ import annotations

import numpy as np

from kmeans_pipeline.aws.scoring import encode_records
from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment

TREATMENT = FeatureTreatment(
    columns=[
        ColumnTreatment(column="Amount", kind="numeric", standardize=True, mean=100.0, std=1e-37),
        ColumnTreatment(column="code", kind="category", levels=[1.0, 2.0]),
    ]
)


def test_a_number_beyond_float32_is_refused_naming_the_field_as_the_data_step_refuses_it():
    encoded = encode_records([{"Amount": 1e39, "code": 1}, {"Amount": "1e39", "code": 1}], TREATMENT)
    assert encoded.good == []
    assert "record 0, field Amount: 1e+39 is beyond float32's range" in encoded.errors[0]
    assert "record 1, field Amount: '1e39' is beyond float32's range" in encoded.errors[1]


def test_a_value_its_treatment_takes_beyond_float32_is_that_records_error_and_the_others_are_scored():
    encoded = encode_records([{"Amount": 100.0, "code": 1}, {"Amount": 200.0, "code": 2}], TREATMENT)
    assert encoded.good == [0] and list(encoded.errors) == [1]
    assert "its feature Amount is beyond float32's range once treated" in encoded.errors[1]
    assert encoded.Z.shape == (1, 3) and np.isfinite(encoded.Z).all() and encoded.raw.tolist() == [[100.0, 1.0]]
