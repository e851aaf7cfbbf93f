"""The endpoint check's float32 tolerance: every correct float32 K-Means answer passes (both formulas, any summation
order), and real errors are still caught (a farther cluster, a distance 1 % off, squared distances, by name)."""

from __future__ import annotations

import numpy as np
import pytest

from kmeans_pipeline.model.scoring import score
from kmeans_pipeline.model.tolerance import compare, power, tolerance
from offline.standin.kmeans import predict
from testkit import float32_endpoints as f32

RNG = np.random.default_rng(2021)
C_DEMO = f32.lloyd(f32.demo_rows(RNG, 4000), 8, RNG)
X_DEMO = np.concatenate([f32.demo_rows(RNG, 800), f32.near_and_far(RNG, C_DEMO, 200, 0.05)])
C_Z = RNG.normal(size=(16, 12)).astype(np.float32)
X_Z = f32.near_and_far(RNG, C_Z, 1000, 1.0)
SCALES = 10.0 ** RNG.uniform(-3, 4, 7)  # each feature its own magnitude
C_MIXED = (RNG.normal(size=(10, 7)) * SCALES).astype(np.float32)
X_MIXED = (
    C_MIXED[RNG.integers(0, 10, 1000)]
    + RNG.normal(size=(1000, 7)) * SCALES * (10.0 ** RNG.uniform(-7, 0.5, 1000))[:, None]
)
DATA = [(X_DEMO, C_DEMO), (X_Z, C_Z), (X_MIXED, C_MIXED)]
IDS = ["demo", "zscore", "mixed"]


def old_check_failures(X, C, closest, distance) -> int:
    """Rows the check before issue 21 failed: rtol 1e-5 against the direct float32 formula."""
    want_closest, want_distance = score(X, C)
    close = np.isclose(distance, want_distance, rtol=1e-5, atol=1e-6)
    claimed = np.sqrt(((np.asarray(X, np.float32) - np.asarray(C, np.float32)[closest]) ** 2).sum(1, dtype=np.float32))
    same = (closest == want_closest) | np.isclose(claimed, want_distance, rtol=1e-5, atol=1e-6)
    return int((~(same & close)).sum())


@pytest.mark.parametrize("variant", f32.VARIANTS)
@pytest.mark.parametrize(("X", "C"), DATA, ids=IDS)
def test_every_float32_endpoint_passes(variant, X, C):
    closest, distance, _ = f32.answer(X, C, variant)
    assert compare(X, C, closest, distance) is None


def test_the_fixed_relative_tolerance_failed_correct_batched_answers_and_this_one_does_not():
    closest, distance, _ = f32.answer(X_DEMO, C_DEMO, "batched_blas")
    assert old_check_failures(X_DEMO, C_DEMO, closest, distance) > 0  # the bug the issue describes
    assert compare(X_DEMO, C_DEMO, closest, distance) is None


@pytest.mark.parametrize(("X", "C"), DATA, ids=IDS)
def test_the_standins_endpoint_is_batched_so_the_offline_run_exercises_the_tolerance(X, C):
    closest, distance = predict(X, C)
    assert compare(X, C, closest, distance.astype(np.float64)) is None
    _, direct = score(X, C)
    assert (distance != direct).any()  # not bit for bit numpy's: the offline check meets float32 error


def test_gate_expectations_of_the_old_check_still_hold():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.concatenate([c + np.random.default_rng(1).normal(size=(200, 2)) for c in centers])
    closest, distance, _ = f32.answer(X, centers, "direct_seq")
    assert compare(X, centers, closest, distance * (1 + 1e-7)) is None
    assert "give a distance off" in compare(X, centers, closest, distance * 1.001)
    assert "clearly farther" in compare(X, centers, (closest + 1) % 3, distance)


def test_a_clearly_farther_cluster_is_caught_even_with_its_true_distance():
    t = tolerance(X_DEMO, C_DEMO)
    far = t.squared.argmax(1)
    message = compare(X_DEMO, C_DEMO, far, t.distance[np.arange(len(far)), far])
    assert message is not None and "name a cluster clearly farther" in message


def test_a_tie_broken_the_other_way_passes():
    C = np.array([[0.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    X = np.array([[1.0, 0.5]])  # equally far from both
    assert compare(X, C, [1], [np.sqrt(1.25)]) is None
    assert compare(X, C, [0], [np.sqrt(1.25)]) is None


@pytest.mark.parametrize("factor", [1.01, 0.99])
@pytest.mark.parametrize(("X", "C"), DATA, ids=IDS)
def test_a_distance_one_percent_off_is_caught(X, C, factor):
    closest, distance, _ = f32.answer(X, C, "batched_blas")
    message = compare(X, C, closest, distance * factor)
    assert message is not None and "give a distance off" in message


@pytest.mark.parametrize(("X", "C"), DATA, ids=IDS)
def test_squared_distances_are_caught_and_named(X, C):
    closest, _, S = f32.answer(X, C, "batched_seq")
    message = compare(X, C, closest, S[np.arange(len(S)), closest].astype(np.float64))
    assert message is not None and "SQUARED" in message


def test_distances_are_not_called_squared():
    closest, distance, _ = f32.answer(X_DEMO, C_DEMO, "direct_seq")
    message = compare(X_DEMO, C_DEMO, closest, distance * 1.05)
    assert message is not None and "SQUARED" not in message


def test_near_zero_the_square_root_bound_holds_and_the_check_says_it_cannot_resolve_one_percent():
    C = np.full((1, 20), 1e4, dtype=np.float32)
    X = C.astype(np.float64) + 1e-3  # true distance ~4.5e-3; a float32 batched answer can be ~100 off
    closest, distance, _ = f32.answer(X, C, "batched_seq")
    assert compare(X, C, closest, distance) is None
    assert power(X, C) == 0.0


def test_power_is_high_on_demo_shaped_data():
    assert power(X_DEMO, C_DEMO) > 0.8


def test_the_bound_is_not_loose():
    """The worst error of any emulated endpoint reaches a fair share of the bound (it is not padded by orders)."""
    t = tolerance(X_Z, C_Z)
    worst = max(
        float(np.max(np.abs(f32.answer(X_Z, C_Z, v)[2].astype(np.float64) - t.squared) / t.squared_bound))
        for v in f32.VARIANTS
    )
    assert 0.05 < worst <= 1.0


def test_the_standins_answer_for_a_row_does_not_depend_on_the_rest_of_the_request():
    closest, distance = predict(X_DEMO, C_DEMO)
    for i in (0, 17, 999):
        one_closest, one_distance = predict(X_DEMO[i : i + 1], C_DEMO)
        assert (one_closest[0], one_distance[0]) == (closest[i], distance[i])
