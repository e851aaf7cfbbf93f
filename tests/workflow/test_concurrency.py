"""Two or more executions on one stack at once (an upload while the schedule fires): one at a time holds the deploy
lease, compares with the model serving at that moment, deploys and checks; every execution succeeds, the endpoint
ends InService on the best of the new models, and the lease is released."""

from __future__ import annotations

import json

import pytest

from offline.__main__ import main
from offline.runner import OfflineAWS
from offline.sample_data import generate

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


def test_of_concurrent_runs_with_different_models_the_strictly_best_serves_and_the_others_end_kept(tmp_path):
    # The demo's runs share one input, and offline models are reproducible, so they tie; here each run trains with
    # its own k on the same upload and seed (the same test rows), so their scores differ and one is strictly best.
    with OfflineAWS() as aws:
        aws.upload(generate(tmp_path, rows=4000).csv_path, "incoming/transactions.csv")
        arns = [
            aws.start({"dataKey": "incoming/transactions.csv", "pollSeconds": 0, "maxTrainingJobs": 2, "k": k}, f"k{k}")
            for k in (3, 5, 8)
        ]
        results = [aws.wait(arn) for arn in arns]
        assert all(r.status == "SUCCEEDED" for r in results), [(r.error, r.cause) for r in results]
        scores = {r.output["runId"]: r.output["evaluation"]["gate"]["newMsd"] for r in results}
        best = min(scores, key=scores.get)
        assert sorted(scores.values())[0] < sorted(scores.values())[1]
        endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)
        assert endpoint["EndpointStatus"] == "InService"
        assert endpoint["EndpointConfigName"].rsplit("-", 1)[-1] == best
        outcomes = {r.output["runId"]: r.output["outcome"] for r in results}
        assert outcomes[best] == "deployed"
        assert all(outcome in {"kept", "superseded", "deployed"} for outcome in outcomes.values())
        assert aws.deploy_lease() is None
