"""Drift checks on windows of live traffic against the report: the demo's traffic, unshifted, never alarms; with its
amounts tripled, every window alarms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmeans_pipeline.data.treatment import encode
from kmeans_pipeline.model.drift import (
    FLAGGED_P_VALUE,
    MIN_RECORDS,
    Thresholds,
    baseline,
    bin_counts,
    compare,
    fisher_upper_tail,
    level_counts,
    psi,
)
from kmeans_pipeline.model.scoring import anomaly_score, refer, score
from testkit.demo_model import COLUMNS, build, read_sample

WINDOW = MIN_RECORDS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("drift")
    return build(directory), read_sample(directory / "live", rows=44_000, seed=1001).raw


DEFAULTS = Thresholds()


def check(model, raw, thresholds=DEFAULTS):
    """A window as the scoring API records it (raw values, the distance scored at, the flag), checked."""
    report = model.report
    Z, _ = encode(report.treatment, raw)
    closest, distance = score(Z, model.centroids)
    reference, referred = refer(Z, closest, distance, model.centroids, report.small_clusters.clusters)
    scores = anomaly_score(reference, referred, report.thresholds.per_cluster, report.thresholds.overall)
    baseline = report.baseline.to_json()
    flagged, rows = report.flagged.per_cluster, report.evaluated_rows
    return compare(baseline, flagged, rows, COLUMNS, raw, referred, scores > 1, thresholds)


def windows(raw, count):
    return [raw[i * WINDOW : (i + 1) * WINDOW] for i in range(count)]


def test_twenty_unshifted_windows_raise_no_alarm(demo):
    model, live = demo
    results = [check(model, window) for window in windows(live, 20)]
    assert [r.drift for r in results] == [False] * 20, [r.findings for r in results if r.drift]
    assert max(r.distance_psi for r in results) < 0.1
    assert max(r.column_psi["Amount"] for r in results) < 0.1


def test_amounts_tripled_alarm_in_every_window(demo):
    model, live = demo
    for window in windows(live, 20):
        shifted = window.copy()
        shifted[:, 1] *= 3
        result = check(model, shifted)
        assert result.drift is True
        assert result.distance_psi > 0.25 and result.column_psi["Amount"] > 0.25
        assert result.column_psi["tranCode"] < 0.1  # the codes did not move, and are not blamed
        assert result.flagged_p_value < 1e-4
        assert any(f.startswith("PSI of Amount") for f in result.findings)


def test_a_window_too_small_says_nothing(demo):
    model, live = demo
    result = check(model, live[: WINDOW - 1])
    assert result.drift is None and result.distance_psi is None
    assert "fewer than the 1,000" in result.findings[0]


def test_new_levels_are_drift(demo):
    model, live = demo
    window = live[:WINDOW].copy()
    window[:100, 0] = 9  # a tenth of the traffic has a code never seen in training
    result = check(model, window)
    assert result.drift is True and result.column_psi["tranCode"] > 0.25


def test_a_report_without_a_baseline_tests_the_flagged_share_only(demo):
    model, live = demo
    window = live[:WINDOW].copy()
    window[:, 1] *= 3
    report = model.report
    Z, _ = encode(report.treatment, window)
    closest, distance = score(Z, model.centroids)
    scores = anomaly_score(closest, distance, report.thresholds.per_cluster, report.thresholds.overall)
    flagged, rows = report.flagged.per_cluster, report.evaluated_rows
    result = compare(None, flagged, rows, COLUMNS, window, distance, scores > 1, Thresholds())
    assert result.drift is True and result.distance_psi is None and result.column_psi == {}


def test_bins_count_ties_where_the_test_rows_fell():
    values = np.array([20.0] * 30 + [40.0] * 30 + [60.0] * 40)
    bins = baseline_column(values)
    assert bins["edges"] == [20.0, 40.0, 60.0] and bins["shares"] == [0.3, 0.3, 0.4, 0.0]
    assert bin_counts(values, bins["edges"]).tolist() == [30, 30, 40, 0]
    assert level_counts(np.array([1.0, 2.0, 9.0]), [1.0, 2.0]).tolist() == [1, 1, 1]


def baseline_column(values):
    from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment

    treatment = FeatureTreatment(columns=[ColumnTreatment(column="x", kind="numeric")])
    return baseline(treatment, values[:, None], values)["columns"][0]


def test_psi_is_zero_for_the_same_shares_and_grows_with_a_shift():
    shares = [0.25, 0.25, 0.25, 0.25]
    assert psi(shares, np.array([2500, 2500, 2500, 2500])) == pytest.approx(0, abs=1e-9)
    assert psi(shares, np.array([4000, 3000, 2000, 1000])) > psi(shares, np.array([3000, 2500, 2500, 2000])) > 0


def hypergeometric_tail(x: int, window: int, test_flagged: int, test_rows: int) -> float:
    """P(X >= x), X the window's share of all flagged records when the window is drawn from both sets: exact."""
    rows, flagged = test_rows + window, test_flagged + x
    total = math.comb(rows, window)
    upper = sum(
        math.comb(flagged, k) * math.comb(rows - flagged, window - k) for k in range(x, min(flagged, window) + 1)
    )
    return upper / total


def test_fishers_tail_is_exact():
    for x, window, test_flagged, test_rows in [
        (3, 10, 1, 20),
        (12, 1000, 20, 2000),
        (40, 1000, 20, 2000),
        (1, 5, 0, 9),
    ]:
        assert fisher_upper_tail(x, window, test_flagged, test_rows) == pytest.approx(
            hypergeometric_tail(x, window, test_flagged, test_rows), rel=1e-9
        )
    assert fisher_upper_tail(0, 1000, 20, 2000) == 1.0
    # As many flagged as the test set's share leaves nothing unusual; ten times as many is far beyond chance.
    assert fisher_upper_tail(10, 1000, 20, 2000) > 0.4 and fisher_upper_tail(100, 1000, 20, 2000) < 1e-20


def normal_tail(threshold: float) -> float:
    return 0.5 * math.erfc(threshold / math.sqrt(2))


@pytest.mark.parametrize("window", [1_000, 10_000, 100_000, 1_000_000])
def test_the_flagged_share_does_not_alarm_on_unchanged_traffic_whatever_the_window(window):
    """200 models, each evaluated on 2,000 test rows (its threshold their 99th percentile, as Evaluate sets it), each
    checked on a window of the same distribution: the test set's share is an estimate, and the test says so. (Taken
    as an exact rate, 21 of these models alarmed at 10,000 records and 67 at 100,000.)"""
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(200):
        test = rng.standard_normal(2000)
        threshold = float(np.percentile(test, 99))
        test_flagged = int((test > threshold).sum())
        flagged = int(rng.binomial(window, normal_tail(threshold)))  # the window's flagged count, unchanged traffic
        alarms += fisher_upper_tail(flagged, window, test_flagged, len(test)) < FLAGGED_P_VALUE
    assert alarms <= 1


def test_how_much_more_flagging_the_test_sees_depends_on_the_test_rows_flagged():
    """Three times the test set's share in a window of 10,000 alarms against 2,000 test rows (20 flagged); twice
    that share needs more test rows (tools/flagged_share_sim.py measures how often)."""
    assert fisher_upper_tail(300, 10_000, 20, 2000) < FLAGGED_P_VALUE
    assert fisher_upper_tail(200, 10_000, 20, 2000) > FLAGGED_P_VALUE
    assert fisher_upper_tail(200, 10_000, 200, 20_000) < FLAGGED_P_VALUE
