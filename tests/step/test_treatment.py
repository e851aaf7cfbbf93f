"""Feature treatments: what auto decides and why, each explicit treatment, and every bad value, through the data
step against moto and through the transform every consumer shares."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.treatment import (
    MAX_CATEGORY_LEVELS,
    TreatmentLearner,
    axis_range,
    channel_text,
    comparable,
    correlation_weights,
    encode,
    from_base,
    raw_numbers,
    to_base,
    to_original,
)
from kmeans_pipeline.errors import DataValidationError, InvalidInputError
from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.data_step import prepare_dataset as prepare_data
from testkit.aws import REGION, put_csv, read_text

START = "2026-11-23T10:00:00.000Z"


def config_for(settings, key: str, **overrides):
    return resolve_run({"dataKey": key, **overrides}, "treat", START, settings, None)


def transactions(n: int, seed: int = 1) -> str:
    """tranCode 1-4 and heavy-tailed amounts, with an id and a merchant that are not features."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(1, 5, n)
    amounts = np.round(rng.lognormal(np.log(50), 1.5, n), 2)
    return "id,tranCode,Amount,merchant\n" + "".join(
        f't{i},{c},{a},"Shop, {i % 7}"\n' for i, (c, a) in enumerate(zip(codes, amounts))
    )


def channel(uri: str) -> np.ndarray:
    bucket, prefix = uri[5:].split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    return np.loadtxt("".join(read_text(bucket, key) for key in keys).splitlines(), delimiter=",", ndmin=2)


def test_auto_one_hot_encodes_a_few_whole_numbers_and_logs_a_long_tailed_amount(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", transactions(3000))
    dataset = prepare_data(
        config_for(settings, "incoming/t.csv", featureColumns=["tranCode", "Amount"]),
        settings,
        boto3.client("s3", region_name=REGION),
    )
    code, amount = dataset.treatment.columns
    assert (code.kind, code.levels, code.decided) == ("category", [1.0, 2.0, 3.0, 4.0], "auto")
    assert "4 distinct whole numbers" in code.reason
    assert (amount.kind, amount.standardize, amount.decided) == (
        "log",
        True,
        "auto",
    ) and "long right tail" in amount.reason
    assert dataset.feature_dim == 5 and dataset.treatment.feature_names == [
        "tranCode=1",
        "tranCode=2",
        "tranCode=3",
        "tranCode=4",
        "log1p(Amount)",
    ]
    # The channels hold the treated rows, z-scored with the training rows' statistics; the raw test rows stay,
    # in the same order.
    train, test, raw_test = channel(dataset.train_uri), channel(dataset.test_uri), channel(dataset.raw_test_uri)
    assert train.shape == (dataset.train_rows, 5) and test.shape == (dataset.test_rows, 5)
    # One-hot: 0, or the level's weight (the default correlation weights, each at least 1).
    weights = np.array([w for c in dataset.treatment.columns for w in c.weights])
    assert (weights >= 1).all() and "correlations" in dataset.treatment.weighting
    hot = train[:, :4] != 0
    assert (hot.sum(1) == 1).all()
    np.testing.assert_allclose(train[:, :4], hot * weights[:4].astype(np.float32))
    np.testing.assert_allclose(train[:, 4].mean(), 0, atol=1e-6) and np.testing.assert_allclose(
        train[:, 4].std(), weights[4], rtol=1e-5
    )
    want, _ = encode(dataset.treatment, raw_test)
    np.testing.assert_allclose(test, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(test[:, :4].argmax(1) + 1, raw_test[:, 0])


def test_auto_keeps_ids_and_symmetric_numbers_numeric_and_z_scores_them(settings):
    rng = np.random.default_rng(3)
    text = "customer,balance\n" + "".join(f"{i},{v:.3f}\n" for i, v in enumerate(rng.normal(1000, 50, 500)))
    put_csv(settings.data_bucket, "incoming/t.csv", text)
    dataset = prepare_data(
        config_for(settings, "incoming/t.csv", k=2), settings, boto3.client("s3", region_name=REGION)
    )
    customer, balance = dataset.treatment.columns
    assert (customer.kind, customer.standardize) == ("numeric", True)  # 500 distinct whole numbers: no category
    assert (balance.kind, balance.standardize) == ("numeric", True)  # never negative, but no long tail
    assert balance.mean == pytest.approx(1000, abs=10) and "z-scored" in balance.reason


def test_requested_treatments_win_over_auto_and_standardize_false_keeps_raw_numbers(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", transactions(500))
    s3 = boto3.client("s3", region_name=REGION)
    features = ["tranCode", "Amount"]
    dataset = prepare_data(
        config_for(
            settings, "incoming/t.csv", featureColumns=features, treatments={"tranCode": "numeric"}, standardize=False
        ),
        settings,
        s3,
    )
    assert [(c.kind, c.standardize, c.decided) for c in dataset.treatment.columns] == [
        ("numeric", False, "requested"),
        ("numeric", False, "requested"),
    ]
    assert dataset.treatment.is_identity and dataset.raw_test_uri is None and "features/" not in dataset.train_uri
    dataset = prepare_data(
        config_for(
            settings,
            "incoming/t.csv",
            featureColumns=features,
            treatments={"tranCode": "category", "Amount": "log"},
            standardize=False,
        ),
        settings,
        s3,
    )
    assert [(c.kind, c.decided) for c in dataset.treatment.columns] == [("category", "requested"), ("log", "requested")]


@pytest.mark.parametrize("merchant", [False, True], ids=["numbers only", "with a quoted text column"])
def test_a_negative_value_in_a_log_column_is_refused_with_its_line_and_column(settings, merchant):
    lines = [f"{i % 3},{10.5 + i}" + (f',"Shop, {i}"' if merchant else "") for i in range(200)]
    lines[120] = "1,-3.25" + (',"Shop, x"' if merchant else "")
    put_csv(
        settings.data_bucket,
        "incoming/t.csv",
        "tranCode,Amount" + (",merchant" if merchant else "") + "\n" + "\n".join(lines) + "\n",
    )
    config = config_for(settings, "incoming/t.csv", featureColumns=["tranCode", "Amount"], treatments={"Amount": "log"})
    with pytest.raises(DataValidationError, match=r"line 122, column Amount: '-3.25' is negative, and a log treatment"):
        prepare_data(config, settings, boto3.client("s3", region_name=REGION))


def test_a_category_with_too_many_levels_is_refused_by_name(settings):
    text = "code,Amount\n" + "".join(f"{i},{i % 5}.5\n" for i in range(MAX_CATEGORY_LEVELS + 40))
    put_csv(settings.data_bucket, "incoming/t.csv", text)
    config = config_for(settings, "incoming/t.csv", treatments={"code": "category"}, k=2)
    with pytest.raises(DataValidationError, match=f"column code: more than {MAX_CATEGORY_LEVELS} distinct values"):
        prepare_data(config, settings, boto3.client("s3", region_name=REGION))


def test_category_levels_come_from_every_row_so_a_level_seen_only_in_test_is_known(settings):
    # 1000 rows of code 1 or 2 and a single row of code 9: wherever the split sends it, 9 is a level.
    text = "code,Amount\n" + "".join(f"{1 + i % 2},{i % 13}.5\n" for i in range(1000)) + "9,3.5\n"
    put_csv(settings.data_bucket, "incoming/t.csv", text)
    dataset = prepare_data(
        config_for(settings, "incoming/t.csv", treatments={"code": "category"}, k=2),
        settings,
        boto3.client("s3", region_name=REGION),
    )
    assert dataset.treatment.columns[0].levels == [1.0, 2.0, 9.0]


def test_treatments_must_name_feature_columns(settings):
    with pytest.raises(InvalidInputError, match="treatments names Amont, which featureColumns does not list"):
        config_for(settings, "incoming/t.csv", featureColumns=["Amount"], treatments={"Amont": "log"})
    with pytest.raises(InvalidInputError, match="treatments.Amount"):
        config_for(settings, "incoming/t.csv", treatments={"Amount": "logarithm"})


def test_encode_reports_an_unseen_level_and_to_original_goes_back_to_the_csvs_units():
    treatment = FeatureTreatment(
        columns=[
            ColumnTreatment(column="code", kind="category", levels=[1.0, 2.0, 5.0]),
            ColumnTreatment(column="Amount", kind="log", standardize=True, mean=3.0, std=2.0),
            ColumnTreatment(column="age", kind="numeric", standardize=True, mean=40.0, std=0.0),
        ]
    )
    X = np.array([[5.0, 99.0, 30.0], [7.0, 0.0, 40.0]])
    Z, unseen = encode(treatment, X)
    np.testing.assert_allclose(Z[0], [0, 0, 1, (np.log1p(99.0) - 3) / 2, -10.0])  # a std of 0 counts as 1
    np.testing.assert_allclose(Z[1, :3], [0, 0, 0])
    assert unseen.tolist() == [[False, False, False], [True, False, False]]
    back = to_original(treatment, Z[:1])
    np.testing.assert_allclose(back, X[:1])
    ranges = axis_range(treatment, Z[0], radius=0.5)
    assert ranges[0] == {"column": "code", "level": 5.0, "weight": 1.0}
    assert ranges[1]["low"] == pytest.approx(np.expm1(np.log1p(99.0) - 1.0)) and ranges[1]["high"] > 99.0
    assert ranges[2] == {"column": "age", "low": 29.5, "high": 30.5}


def test_a_change_of_kind_scaling_or_levels_is_named_and_new_statistics_are_not():
    numeric = z_scored(["a", "b"], [1.0, 2.0], [1.0, 1.0])
    refit = z_scored(["a", "b"], [5.0, 6.0], [2.0, 3.0])
    assert comparable(numeric, refit) is None
    assert "was treated as numeric, z-scored, now as numeric" in comparable(numeric, raw_numbers(["a", "b"]))
    assert "clusters ['a', 'b'], this one ['b', 'a']" in comparable(numeric, raw_numbers(["b", "a"]))


def test_the_learner_keeps_a_sample_of_fixed_size_whatever_the_rows():
    learner = TreatmentLearner(seed=1)
    rng = np.random.default_rng(2)
    for _ in range(30):
        learner.add(rng.exponential(10.0, size=(50_000, 2)), train=True)
    assert learner.rows == 1_500_000 and len(learner.sample) == 100_000
    # A uniform sample: its median is the data's, not the first blocks'.
    assert np.median(learner.sample[:, 0]) == pytest.approx(10.0 * np.log(2), rel=0.03)
    treatment = learner.decide(["x", "y"], {}, None)
    assert [c.kind for c in treatment.columns] == ["numeric", "numeric"]  # p99 / p50 = 6.6: not a long tail


def z_scored(columns: list[str], mean: list[float], std: list[float]) -> FeatureTreatment:
    return FeatureTreatment(
        columns=[
            ColumnTreatment(column=c, kind="numeric", standardize=True, mean=m, std=s)
            for c, m, s in zip(columns, mean, std)
        ]
    )


def test_z_scored_numbers_and_a_std_of_0_counts_as_1():
    treatment = z_scored(["a", "b", "c"], [10.0, -2.0, 5.0], [2.0, 0.5, 0.0])
    X = np.array([[10.0, -2.0, 5.0], [14.0, -1.0, 7.5], [0.0, 0.0, 0.0]])
    Z, _ = encode(treatment, X)
    np.testing.assert_array_equal(Z, [[0, 0, 0], [2, 2, 2.5], [-5, 4, -5]])
    np.testing.assert_allclose(to_base(treatment, Z), X)
    rng = np.random.default_rng(2)
    X = rng.normal(loc=100, scale=30, size=(200, 3))
    np.testing.assert_allclose(to_original(treatment, encode(treatment, X)[0]), X, rtol=1e-12)


def test_treated_channel_text_is_the_encoded_rows_in_float32():
    treatment = z_scored(["a", "b"], [3.5, 1200.0], [1.25, 0.0])
    X = np.random.default_rng(4).normal(loc=[3, 1000], scale=[2, 500], size=(100, 2))
    written = parse_rows(channel_text(treatment, X), 2)
    want = encode(treatment, X)[0].astype(np.float32)
    # Nine significant digits per value (%.9g): every float32 comes back exactly, whatever else is in its column.
    np.testing.assert_array_equal(written.astype(np.float32), want)


def test_a_constant_column_gets_a_std_of_0_not_rounding_noise():
    learner = TreatmentLearner()
    for _ in range(3):
        learner.add(np.column_stack([np.full(1000, 0.1), np.arange(1000.0)]), train=True)
    treatment = learner.decide(["flat", "x"], {}, True)
    assert treatment.columns[0].std == 0.0 and treatment.columns[1].std > 0
    z = parse_rows(channel_text(treatment, np.array([[0.1, 5.0], [0.1, 7.0]])), 2)
    assert (np.abs(z[:, 0]) < 1e-9).all()  # (x - mean) / 1, not (x - mean) / 1e-14


def test_encode_checks_the_column_count():
    with pytest.raises(ValueError, match="the treatment has 2 columns"):
        encode(raw_numbers(["a", "b"]), np.zeros((3, 3)))


def test_correlation_weights_count_what_columns_measure_together_and_noise_once():
    rng = np.random.default_rng(5)
    size = rng.normal(size=4000)
    # Three columns measure one property (r near 1), one moves alone, one is constant.
    X = np.column_stack(
        [
            10 + size + 0.01 * rng.normal(size=4000),
            100 * size + rng.normal(size=4000),
            -3 * size + 0.02 * rng.normal(size=4000),
            rng.normal(5, 2, size=4000),
            np.full(4000, 7.0),
        ]
    )
    learner = TreatmentLearner()
    learner.add(X, train=True)
    plain = learner.decide(["a", "b", "c", "noise", "flat"], {}, True)
    weighted = correlation_weights(plain, X)
    weights = [c.weights[0] for c in weighted.columns]
    np.testing.assert_allclose(weights[:3], np.sqrt(3), rtol=1e-3)
    assert weights[3] == pytest.approx(1, abs=2e-3) and weights[4] == 1.0
    assert "on 4,000 sampled training rows (1: it moves with no other feature): from 1 (" in weighted.weighting
    assert "to 1.73 (" in weighted.weighting
    # The features are the z-scores times the weights; every inverse undoes both.
    Z = encode(weighted, X[:50])[0]
    np.testing.assert_allclose(Z, encode(plain, X[:50])[0] * weights)
    np.testing.assert_allclose(to_base(weighted, Z), X[:50], rtol=1e-12)
    np.testing.assert_allclose(to_original(weighted, Z), X[:50], rtol=1e-12)
    # Along one column, a radius in the model's units spans std / weight of the CSV's.
    ranges = axis_range(weighted, np.zeros(5), radius=1.0)
    assert ranges[0]["high"] - ranges[0]["low"] == pytest.approx(2 * X[:, 0].std() / weights[0])
    # A record 3 standard deviations out along what three columns measure lies farther than one 3 out on noise.
    centre = X.mean(0)
    along = centre + 3 * X.std(0) * np.array([1, 1, -1, 0, 0])
    odd = centre + 3 * X.std(0) * np.array([0, 0, 0, 1, 0])
    far = np.linalg.norm(encode(weighted, np.array([along, odd]))[0], axis=1)
    assert far[0] > 2.5 * far[1]


def test_correlation_weights_weigh_one_hot_levels_and_leave_raw_numbers_alone():
    rng = np.random.default_rng(6)
    code = rng.integers(1, 4, 3000).astype(float)
    X = np.column_stack([code, code * 10 + rng.normal(size=3000)])
    learner = TreatmentLearner()
    learner.add(X, train=True)
    weighted = correlation_weights(learner.decide(["code", "x"], {"code": "category"}, True), X)
    level_weights = weighted.columns[0].weights
    assert len(level_weights) == 3 and all(w > 1 for w in level_weights)
    Z = encode(weighted, np.array([[2.0, 20.0]]))[0][0]
    assert Z[:3].tolist() == [0.0, level_weights[1], 0.0]
    raw = raw_numbers(["a", "b"])
    assert correlation_weights(raw, X) is raw  # not z-scored: weights would compare unlike spreads
    unscaled = learner.decide(["code", "x"], {"code": "category"}, False)
    assert correlation_weights(unscaled, X) is unscaled


def test_weights_must_be_one_positive_number_per_feature():
    with pytest.raises(ValueError, match="weights must be 3 positive numbers"):
        ColumnTreatment(column="code", kind="category", levels=[1.0, 2.0, 3.0], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weights must be 1 positive numbers"):
        ColumnTreatment(column="x", kind="numeric", standardize=True, mean=0.0, std=1.0, weights=[0.0])


def test_feature_weights_equal_leaves_every_feature_at_1(settings):
    put_csv(settings.data_bucket, "incoming/t.csv", transactions(800))
    s3 = boto3.client("s3", region_name=REGION)
    features = ["tranCode", "Amount"]
    weighted = prepare_data(config_for(settings, "incoming/t.csv", featureColumns=features), settings, s3)
    assert all(c.weights for c in weighted.treatment.columns) and weighted.treatment.weighting
    equal = prepare_data(
        config_for(settings, "incoming/t.csv", featureColumns=features, featureWeights="equal"), settings, s3
    )
    assert all(c.weights is None for c in equal.treatment.columns) and equal.treatment.weighting == ""
    with pytest.raises(InvalidInputError, match="featureWeights"):
        config_for(settings, "incoming/t.csv", featureWeights="pca")


def test_a_model_without_weights_maps_into_a_weighted_models_features_for_the_gate():
    # The serving model may predate the weights: the gate maps its centroids through both treatments.
    rng = np.random.default_rng(7)
    x = rng.normal(size=2000)
    X = np.column_stack([x + 0.1 * rng.normal(size=2000), 3 * x, rng.integers(1, 4, 2000)])
    learner = TreatmentLearner()
    learner.add(X, train=True)
    plain = learner.decide(["a", "b", "code"], {"code": "category"}, True)
    weighted = correlation_weights(plain, X)
    assert comparable(plain, weighted) is None
    rows = X[:20]
    served = encode(plain, rows)[0]  # centroids at these records, in the serving model's features
    np.testing.assert_allclose(from_base(weighted, to_base(plain, served)), encode(weighted, rows)[0], atol=1e-12)
