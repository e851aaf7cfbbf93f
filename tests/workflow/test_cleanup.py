"""After a verified deploy, superseded models and endpoint configs beyond the newest N are deleted; never the
one serving, one being deployed, or one a later execution made; a failed run deletes nothing."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from kmeans_pipeline.steps.clean_up import clean_up
from kmeans_pipeline.steps.resolve_run import resolve_run
from offline.runner import OfflineAWS
from testkit.aws import REGION
from testkit.stacks import FAST, GOOD


def names_in(aws, run_ids=None):
    sm = aws.client("sagemaker")
    models = sorted(m["ModelName"] for m in sm.list_models()["Models"])
    configs = sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"])
    return models, configs


@pytest.mark.slow  # four whole executions
def test_only_the_newest_runs_are_kept_and_the_serving_one_never_goes():
    with OfflineAWS(parameters={"KeepModels": "2"}) as aws:
        aws.upload(GOOD.encode(), "incoming/good.csv")
        results = [aws.run({"dataKey": "incoming/good.csv", **FAST, "seed": i}, name=f"run-{i}") for i in range(4)]
        assert all(r.status == "SUCCEEDED" for r in results)
        configs = [r.output["endpointConfig"] for r in results]
        assert results[-1].output["cleanup"]["deleted"] == [configs[1]]  # run-0's went when run-2 cleaned up
        models, kept = names_in(aws)
        assert kept == sorted(configs[2:]) and models == sorted(configs[2:])

        # A failed run deletes nothing, and the model that served keeps serving.
        aws.standin.faults.endpoint_update_fails = "injected"
        failed = aws.run({"dataKey": "incoming/good.csv", **FAST, "seed": 9}, name="run-fails")
        assert failed.status == "FAILED"
        models, kept = names_in(aws)
        assert set(configs[2:]) <= set(kept)
        served = aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)["EndpointConfigName"]
        assert served == configs[-1]


def test_configs_in_use_being_deployed_or_newer_than_this_run_are_never_deleted(settings):
    config = resolve_run({"dataKey": "k"}, "cleaner", "2026-11-23T10:00:00Z", settings, None)
    ours = config.names.endpoint_config
    serving, pending, later, old1, old2 = (f"kmeans-dev-{c * 10}" for c in "abcde")
    created = {old2: 1, old1: 2, serving: 3, pending: 4, ours: 5, later: 6}

    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stamp = lambda n: f"2026-11-23T10:00:0{n}Z"  # noqa: E731
    stub.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {
                    "EndpointConfigName": n,
                    "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/{n}",
                    "CreationTime": stamp(t),
                }
                for n, t in created.items()
            ]
            + [
                {
                    "EndpointConfigName": "kmeans-dev2-0123456789",
                    "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x",
                    "CreationTime": stamp(0),
                }
            ]
        },
    )
    stub.add_response(
        "list_models",
        {
            "Models": [
                {
                    "ModelName": n,
                    "ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/{n}",
                    "CreationTime": stamp(t),
                }
                for n, t in created.items()
            ]
        },
    )
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "kmeans-dev",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/kmeans-dev",
            "EndpointConfigName": serving,
            "EndpointStatus": "Updating",
            "CreationTime": stamp(1),
            "LastModifiedTime": stamp(1),
            "PendingDeploymentSummary": {"EndpointConfigName": pending},
        },
    )
    for name in (old1, old2):
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": name})
        stub.add_response("delete_model", {}, {"ModelName": name})
    with stub:
        result = clean_up(config, "kmeans-dev", keep=1, sagemaker=client)
    stub.assert_no_pending_responses()
    assert result.deleted == [old1, old2]
    assert set(result.kept) == {serving, pending, ours, later}
