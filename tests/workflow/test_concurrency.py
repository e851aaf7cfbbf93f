"""Two or more executions on one stack at once (an upload while the schedule fires): one at a time holds the deploy
lease, compares with the model serving at that moment, deploys and checks; every execution succeeds, the endpoint
ends InService on the best of the new models, and the lease is released."""

from __future__ import annotations

import json

import pytest

from offline.__main__ import main

pytestmark = pytest.mark.slow  # several whole executions at once


def demo(capsys, tmp_path, count: int, **run_input) -> tuple[int, dict]:
    code = main(
        ["--rows", "4000", "--concurrent", str(count), "--json", "--output", str(tmp_path)]
        + ["--input", json.dumps({"maxTrainingJobs": 2, "k": 4, **run_input})]
    )
    out = capsys.readouterr().out
    return code, json.loads(out[out.index("{\n") :])


@pytest.mark.parametrize("count", [2, 3])
def test_concurrent_runs_all_succeed_and_the_best_new_model_serves(capsys, tmp_path, count):
    code, report = demo(capsys, tmp_path, count)
    executions = report["executions"]
    assert code == 0 and len(executions) == count
    assert all(e["status"] == "SUCCEEDED" for e in executions), executions
    outcomes = [e["outcome"] for e in executions]
    assert set(outcomes) <= {"deployed", "kept", "superseded"} and "deployed" in outcomes
    assert report["endpoint"]["status"] == "InService"
    # Every run scored its model on the same test rows (same upload, same seed): the one serving has the lowest MSD.
    scores = {e["runId"]: e["newMsd"] for e in executions}
    assert len(scores) == count and None not in scores.values()
    serving = report["endpoint"]["endpointConfig"].rsplit("-", 1)[-1]  # a config is named after its run
    assert scores[serving] == min(scores.values()), (serving, scores)
    # Nothing holds the lease once they are done.
    assert report["deployLease"] is None


def test_with_a_tolerance_a_later_run_still_replaces_a_concurrent_model_only_if_at_least_as_good(capsys, tmp_path):
    code, report = demo(capsys, tmp_path, 2, gateTolerancePercent=50)
    assert code == 0
    scores = {e["runId"]: e["newMsd"] for e in report["executions"]}
    assert len(scores) == 2 and None not in scores.values()
    assert scores[report["endpoint"]["endpointConfig"].rsplit("-", 1)[-1]] == min(scores.values())
