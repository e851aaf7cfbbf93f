"""Two or more executions on one stack at once (an upload while the schedule fires) never break the endpoint."""

from __future__ import annotations

import json

import pytest

from offline.__main__ import main

pytestmark = pytest.mark.slow  # three whole executions at once


def test_concurrent_runs_leave_the_endpoint_serving_one_of_their_models(capsys, tmp_path):
    code = main(
        [
            "--rows",
            "4000",
            "--concurrent",
            "3",
            "--json",
            "--output",
            str(tmp_path),
            # This is about deployments racing, so every run's model passes the quality gate.
            "--input",
            json.dumps({"maxTrainingJobs": 2, "k": 4, "gateTolerancePercent": 1000}),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    executions = report["executions"]
    assert len(executions) == 3
    deployed = {e["endpointConfig"] for e in executions if e["status"] == "SUCCEEDED"}
    assert deployed, "at least one execution deploys"
    for execution in executions:
        # The later ones wait for the earlier update; one that was overtaken says so.
        assert execution["status"] == "SUCCEEDED" or execution["error"] == "EndpointSuperseded", execution
    assert report["endpoint"]["status"] == "InService"
    assert report["endpoint"]["endpointConfig"] in deployed
    assert code == (0 if len(deployed) == 3 else 1)
