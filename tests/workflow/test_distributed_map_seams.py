"""A JSONata Distributed Map runs offline as Step Functions runs it: each seam of offline/moto_patches.py for it
(10 to 16), pinned on a small state machine whose Map children call a Python handler through the Lambda seam,
against what the AWS developer guide (and AWS's own answers, where the guide shows no example) say.

Sources: the guide's pages "Distributed Map state" (failure threshold), "ItemBatcher (Map)", "ResultWriter (Map)",
"ToleratedFailurePercentage", the Map Run API (DescribeMapRun, ListMapRuns, ListExecutions with mapRunArn); AWS's
recorded answers in LocalStack's snapshot tests (the child input {"BatchInput", "Items"}, the manifest's key and the
Map's output with a ResultWriter, the cause of States.ExceedToleratedFailureThreshold). See
docs-draft/offline-distributed-map.md."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from offline import moto_patches
from testkit.aws import REGION
from testkit.machines import lambda_task, run_machine

THRESHOLD = "States.ExceedToleratedFailureThreshold"
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"


class ItemFailed(Exception):
    pass


def echo_or_fail(event: Any) -> Any:
    """The child's handler: fails an item (or a batch holding one) marked "fail", echoes the rest."""
    items = event["Items"] if isinstance(event, dict) and "Items" in event else [event]
    if any(isinstance(item, dict) and item.get("fail") for item in items):
        raise ItemFailed(f"item {json.dumps(event)} failed")
    return event


def run(
    states: dict,
    handler: Callable[[Any], Any] = echo_or_fail,
    execution_input: Any = None,
    after: Callable[[Any, str], None] | None = None,
    buckets: tuple[str, ...] = (),
    query_language: str | None = "JSONata",
    before: Callable[[Any], None] | None = None,
) -> dict:
    """Run a state machine whose Task states call `handler` through the runner's Lambda seam."""
    return run_machine(
        states, handler, execution_input, query_language=query_language, buckets=buckets, before=before, after=after
    )


def task(**fields: Any) -> dict:
    return lambda_task(Output="{% $states.result.Payload %}", **fields)


def distributed_map(execution_type: str = "STANDARD", **fields: Any) -> dict:
    """A Distributed Map over the execution input's `items`, each child one Task calling the handler."""
    return {
        "Type": "Map",
        "Items": "{% $states.input.items %}",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
            "StartAt": "Work",
            "States": {"Work": task()},
        },
        "End": True,
        **fields,
    }


def caught_map(**fields: Any) -> dict:
    catch = [{"ErrorEquals": ["States.ALL"], "Output": {"caught": "{% $states.errorOutput %}"}, "Next": "Caught"}]
    return {"Map": distributed_map(Catch=catch, **fields), "Caught": {"Type": "Pass", "End": True}}


def output(described: dict) -> Any:
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    return json.loads(described["output"])


def items(n: int, failing: tuple[int, ...] = ()) -> dict:
    return {"items": [{"n": i, **({"fail": True} if i in failing else {})} for i in range(n)]}


# ------------------------------------------------------------------------------------------------------------
# Seam 10: a failed child fails the Map Run past its tolerated failure threshold
# ------------------------------------------------------------------------------------------------------------


def test_one_failed_child_fails_the_map_run_and_the_maps_catch_sees_the_threshold_error():
    """AWS: with no ToleratedFailureCount/Percentage (0), one failed child fails the Map Run with
    States.ExceedToleratedFailureThreshold, an error of the Map state that its Catch can catch (moto: the Map
    succeeded with a null in place of the child's result)."""
    described = run(caught_map(), execution_input=items(3, failing=(1,)))
    assert output(described)["caught"] == {"Error": THRESHOLD, "Cause": THRESHOLD_CAUSE}
    failed = [e for e in described["events"] if e["type"] == "MapRunFailed"]
    assert failed and failed[0]["mapRunFailedEventDetails"] == {"error": THRESHOLD, "cause": THRESHOLD_CAUSE}


def test_without_a_catch_the_threshold_error_fails_the_execution():
    described = run({"Map": distributed_map()}, execution_input=items(2, failing=(0,)))
    assert (described["status"], described["error"], described["cause"]) == ("FAILED", THRESHOLD, THRESHOLD_CAUSE)


def test_failures_within_the_tolerated_count_leave_each_failed_childs_execution_result_in_its_place():
    """AWS (ResultWriter page): a failed child's result is returned unchanged, as with Transformation NONE: its
    execution's record, with the child's Error and Cause, where its output would be."""
    results = output(run({"Map": distributed_map(ToleratedFailureCount=1)}, execution_input=items(3, failing=(1,))))
    assert results[0] == {"n": 0} and results[2] == {"n": 2}
    failed = results[1]
    assert failed["Status"] == "FAILED" and failed["Error"] == "ItemFailed"
    assert json.loads(failed["Cause"])["errorMessage"] == 'item {"n": 1, "fail": true} failed'
    assert json.loads(failed["Input"]) == {"n": 1, "fail": True} and failed["InputDetails"] == {"Included": True}
    assert ":execution:machine/" in failed["ExecutionArn"] and failed["ExecutionArn"].endswith(":" + failed["Name"])
    assert "Output" not in failed and failed["StartDate"] <= failed["StopDate"]


def test_one_failure_more_than_the_tolerated_count_fails_the_map_run():
    described = run(caught_map(ToleratedFailureCount=1), execution_input=items(4, failing=(1, 3)))
    assert output(described)["caught"]["Error"] == THRESHOLD


def test_once_the_threshold_is_passed_no_further_child_starts_and_the_rest_are_written_as_pending():
    """AWS: the Map Run fails once the threshold is passed, and ResultWriter lists the children it never started
    in PENDING_0.json."""
    calls: list[Any] = []

    def counted(event: Any) -> Any:
        if isinstance(event, dict) and "ResultWriterDetails" in event:
            return read_results(event)
        calls.append(event)
        return echo_or_fail(event)

    states = map_then_reduce(MaxConcurrency=1)
    states["Map"]["Catch"] = [{"ErrorEquals": [THRESHOLD], "Output": "{% $states.errorOutput %}", "Next": "Caught"}]
    states["Caught"] = {"Type": "Pass", "End": True}
    seen: dict[str, Any] = {}

    def inspect(sfn: Any, arn: str) -> None:
        (listed,) = sfn.list_map_runs(executionArn=arn)["mapRuns"]
        seen["described"] = sfn.describe_map_run(mapRunArn=listed["mapRunArn"])
        s3 = boto3.client("s3", region_name=REGION)
        run_id = listed["mapRunArn"].split(":")[-1]
        manifest = json.loads(s3.get_object(Bucket="results", Key=f"runs/r3/{run_id}/manifest.json")["Body"].read())
        seen["pending"] = json.loads(
            s3.get_object(Bucket="results", Key=manifest["ResultFiles"]["PENDING"][0]["Key"])["Body"].read()
        )

    described = run(states, counted, {**items(5, failing=(0,)), "run": "r3"}, after=inspect, buckets=("results",))
    assert output(described) == {"Error": THRESHOLD, "Cause": THRESHOLD_CAUSE}
    assert calls == [{"n": 0, "fail": True}]  # one at a time, and none after the first failed
    assert seen["described"]["status"] == "FAILED"
    assert [json.loads(r["Input"])["n"] for r in seen["pending"]] == [1, 2, 3, 4]
    assert {r["Status"] for r in seen["pending"]} == {"PENDING"}


# ------------------------------------------------------------------------------------------------------------
# Seam 11: what moto's parser refused (a whole-number ToleratedFailurePercentage, EXPRESS children; ItemBatcher
# and ResultWriter below), and the state a refused definition left behind
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("percentage", [10, 10.0, "{% 10 %}"])
def test_a_tolerated_failure_percentage_fails_the_map_run_only_above_it(percentage):
    """AWS: ToleratedFailurePercentage is a number from 0 to 100, a whole number included (moto refused `10`); the
    Map Run fails when the failed items' share exceeds it: 1 of 10 is 10%, tolerated; 2 of 10 are not."""
    one = output(run(caught_map(ToleratedFailurePercentage=percentage), execution_input=items(10, failing=(4,))))
    assert isinstance(one, list) and one[4]["Status"] == "FAILED" and one[5] == {"n": 5}
    two = output(run(caught_map(ToleratedFailurePercentage=percentage), execution_input=items(10, failing=(4, 7))))
    assert two["caught"]["Error"] == THRESHOLD


def test_express_children_are_accepted_and_run_as_standard_ones_offline():
    """AWS accepts ExecutionType EXPRESS for a Distributed Map's children (moto's parser refused it)."""
    assert output(run({"Map": distributed_map(execution_type="EXPRESS")}, execution_input=items(2))) == [
        {"n": 0},
        {"n": 1},
    ]


def test_the_state_machine_keeps_its_own_definition_and_an_inline_map_cannot_batch():
    """The parser reads a rewritten text; DescribeStateMachine gives the definition as written. AWS refuses
    ItemBatcher and ResultWriter outside a Distributed Map."""
    seen: dict[str, Any] = {}

    def inspect(sfn: Any, arn: str) -> None:
        machine = sfn.describe_execution(executionArn=arn)["stateMachineArn"]
        seen["definition"] = json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])
        inline = distributed_map(ItemBatcher={"MaxItemsPerBatch": 2})
        inline["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
        definition = {"QueryLanguage": "JSONata", "StartAt": "Map", "States": {"Map": inline}}
        role = sfn.describe_state_machine(stateMachineArn=machine)["roleArn"]
        with pytest.raises(ClientError, match="DISTRIBUTED"):
            sfn.create_state_machine(name="inline", roleArn=role, definition=json.dumps(definition))

    state = distributed_map("EXPRESS", ItemBatcher={"MaxItemsPerBatch": 2}, ToleratedFailurePercentage=10)
    output(run({"Map": state}, execution_input=items(1), after=inspect))
    kept = seen["definition"]["States"]["Map"]
    assert kept["ItemBatcher"] == {"MaxItemsPerBatch": 2} and type(kept["ToleratedFailurePercentage"]) is int
    assert kept["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "EXPRESS"


def test_a_definition_refused_mid_parse_does_not_change_how_the_next_one_parses():
    """moto keeps the parser's query-language scopes on a class-level list: a definition refused inside a state
    left its JSONata scope there, and the next JSONPath definition was read as JSONata."""
    jsonata_with_a_path = {"P": {"Type": "Pass", "ResultPath": "$.x", "End": True}}
    refused = []

    def create_refused(sfn: Any, arn: str) -> None:
        role = arn.replace(":states:", ":iam:").split(":execution:")[0].replace(":iam:us-east-1:", ":iam::")
        definition = {"QueryLanguage": "JSONata", "StartAt": "P", "States": jsonata_with_a_path}
        with pytest.raises(ClientError) as error:
            sfn.create_state_machine(name="refused", roleArn=f"{role}:role/runner", definition=json.dumps(definition))
        refused.append(str(error.value))

    run({"P": {"Type": "Pass", "End": True}}, after=create_refused)
    assert refused and "ResultPath" in refused[0]
    jsonpath = {"P": {"Type": "Pass", "Parameters": {"a.$": "$.x"}, "End": True}}
    assert output(run(jsonpath, execution_input={"x": 1}, query_language=None)) == {"a": 1}


# ------------------------------------------------------------------------------------------------------------
# Seam 12: ItemBatcher
# ------------------------------------------------------------------------------------------------------------


def test_item_batcher_hands_each_child_its_items_and_the_batch_input():
    """AWS (ItemBatcher page, and its recorded JSONata answer): each child's input is {"BatchInput": ...,
    "Items": [...]}, at most MaxItemsPerBatch items, BatchInput evaluated in the Map state."""
    batcher = {"MaxItemsPerBatch": "{% $states.input.per %}", "BatchInput": {"run": "{% $states.input.run %}"}}
    results = output(
        run(
            {"Map": distributed_map(ItemBatcher=batcher)},
            execution_input={"items": [1, 2, 3, 4, 5], "per": 2, "run": "r"},
        )
    )
    assert results == [
        {"BatchInput": {"run": "r"}, "Items": [1, 2]},
        {"BatchInput": {"run": "r"}, "Items": [3, 4]},
        {"BatchInput": {"run": "r"}, "Items": [5]},
    ]


def test_item_batcher_keeps_each_batch_within_max_input_bytes_per_batch():
    words = ["x" * 40] * 5  # each item is 42 bytes of JSON; {"Items":[...]} holds two within 100 bytes, not three
    results = output(
        run({"Map": distributed_map(ItemBatcher={"MaxInputBytesPerBatch": 100})}, execution_input={"items": words})
    )
    assert [len(batch["Items"]) for batch in results] == [2, 2, 1]
    assert all(len(json.dumps(batch, separators=(",", ":"))) <= 100 for batch in results)
    assert "BatchInput" not in results[0]


def test_item_selector_shapes_each_item_before_it_is_batched():
    selector = {"value": "{% $states.context.Map.Item.Value %}", "index": "{% $states.context.Map.Item.Index %}"}
    results = output(
        run(
            {"Map": distributed_map(ItemSelector=selector, ItemBatcher={"MaxItemsPerBatch": 2})},
            execution_input={"items": ["a", "b", "c"]},
        )
    )
    assert results == [
        {"Items": [{"value": "a", "index": 0}, {"value": "b", "index": 1}]},
        {"Items": [{"value": "c", "index": 2}]},
    ]


def test_a_failed_batch_counts_each_of_its_items_as_failed():
    batcher = {"ItemBatcher": {"MaxItemsPerBatch": 2}}
    refused = run(caught_map(ToleratedFailureCount=1, **batcher), execution_input=items(4, failing=(3,)))
    assert output(refused)["caught"]["Error"] == THRESHOLD  # the batch [2, 3] failed: two items
    tolerated = output(run(caught_map(ToleratedFailureCount=2, **batcher), execution_input=items(4, failing=(3,))))
    assert tolerated[0] == {"Items": [{"n": 0}, {"n": 1}]} and tolerated[1]["Status"] == "FAILED"


# ------------------------------------------------------------------------------------------------------------
# Seam 13: ResultWriter to S3 in JSONata
# ------------------------------------------------------------------------------------------------------------


def read_results(event: dict) -> dict:
    """The reduce step: read the manifest the Map's output names, then each results file it lists."""
    s3 = boto3.client("s3", region_name=REGION)
    details = event["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read())
    files = {
        status: [json.loads(s3.get_object(Bucket=details["Bucket"], Key=f["Key"])["Body"].read()) for f in listed]
        for status, listed in manifest["ResultFiles"].items()
    }
    sizes = {
        f["Key"]: (f["Size"], s3.head_object(Bucket=details["Bucket"], Key=f["Key"])["ContentLength"])
        for listed in manifest["ResultFiles"].values()
        for f in listed
    }
    return {"event": event, "manifest": manifest, "files": files, "sizes": sizes}


def map_then_reduce(**map_fields: Any) -> dict:
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Arguments": {"Bucket": "results", "Prefix": "{% 'runs/' & $states.input.run %}"},
    }
    return {"Map": then_reduce(distributed_map(ResultWriter=writer, **map_fields)), "Reduce": task()}


def then_reduce(state: dict) -> dict:
    del state["End"]
    return {**state, "Next": "Reduce"}


def child_or_reduce(event: Any) -> Any:
    return read_results(event) if isinstance(event, dict) and "ResultWriterDetails" in event else echo_or_fail(event)


def test_result_writer_writes_the_manifest_and_results_and_the_map_outputs_where_they_are():
    """AWS: the Map's output is {MapRunArn, ResultWriterDetails: {Bucket, Key}}, Key <Prefix>/<map run id>/
    manifest.json; the manifest lists SUCCEEDED_0.json (records of each child, Transformation NONE by default)."""
    result = output(
        run(map_then_reduce(), child_or_reduce, execution_input={**items(3), "run": "r1"}, buckets=("results",))
    )
    event, manifest = result["event"], result["manifest"]
    map_run_arn = event["MapRunArn"]
    run_id = map_run_arn.split(":")[-1]
    assert ":mapRun:machine/" in map_run_arn
    assert event["ResultWriterDetails"] == {"Bucket": "results", "Key": f"runs/r1/{run_id}/manifest.json"}
    assert manifest["DestinationBucket"] == "results" and manifest["MapRunArn"] == map_run_arn
    assert [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]] == [f"runs/r1/{run_id}/SUCCEEDED_0.json"]
    assert manifest["ResultFiles"]["FAILED"] == [] and manifest["ResultFiles"]["PENDING"] == []
    assert all(listed == actual for listed, actual in result["sizes"].values())
    records = result["files"]["SUCCEEDED"][0]
    assert [json.loads(r["Output"]) for r in records] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [json.loads(r["Input"]) for r in records] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {r["Status"] for r in records} == {"SUCCEEDED"}
    assert all(r["StateMachineArn"] in r["ExecutionArn"].replace(":execution:", ":stateMachine:") for r in records)


def test_result_writer_lists_tolerated_failures_in_failed_0_json():
    result = output(
        run(
            map_then_reduce(ToleratedFailureCount=1),
            child_or_reduce,
            execution_input={**items(3, failing=(2,)), "run": "r2"},
            buckets=("results",),
        )
    )
    run_id = result["event"]["MapRunArn"].split(":")[-1]
    assert [f["Key"] for f in result["manifest"]["ResultFiles"]["FAILED"]] == [f"runs/r2/{run_id}/FAILED_0.json"]
    (failed,) = result["files"]["FAILED"][0]
    assert failed["Status"] == "FAILED" and failed["Error"] == "ItemFailed" and json.loads(failed["Input"])["n"] == 2
    assert [json.loads(r["Output"])["n"] for r in result["files"]["SUCCEEDED"][0]] == [0, 1]


@pytest.mark.parametrize(
    ("transformation", "expected"),
    [("COMPACT", [[1, 2], [3]]), ("FLATTEN", [1, 2, 3])],
)
def test_a_writer_config_alone_shapes_the_maps_output_without_writing(transformation, expected):
    writer = {"WriterConfig": {"Transformation": transformation, "OutputType": "JSON"}}
    state = distributed_map(ResultWriter=writer)
    state["ItemProcessor"]["States"] = {"Work": {"Type": "Pass", "Output": "{% $states.input.v %}", "End": True}}
    assert output(run({"Map": state}, execution_input={"items": [{"v": [1, 2]}, {"v": [3]}]})) == expected


def test_a_writer_config_with_compact_writes_the_outputs_alone():
    writer = {
        "Resource": "arn:aws:states:::s3:putObject",
        "Arguments": {"Bucket": "results", "Prefix": "compact"},
        "WriterConfig": {"Transformation": "COMPACT", "OutputType": "JSON"},
    }
    state = then_reduce(distributed_map(ResultWriter=writer))
    result = output(run({"Map": state, "Reduce": task()}, child_or_reduce, items(2), buckets=("results",)))
    assert result["files"]["SUCCEEDED"] == [[{"n": 0}, {"n": 1}]]


# ------------------------------------------------------------------------------------------------------------
# Seam 14: concurrency without MaxConcurrency
# ------------------------------------------------------------------------------------------------------------


def concurrency_probe() -> tuple[Callable[[Any], Any], list[int]]:
    lock, running, peak = threading.Lock(), [0], [0]

    def handler(event: Any) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return event

    return handler, peak


def test_without_max_concurrency_the_children_run_a_few_at_a_time_and_keep_their_order():
    """AWS's unset MaxConcurrency allows 10,000 children at once; moto started a thread per item. Offline the
    children share a few threads (moto_patches.MAP_RUN_WORKERS); the results are the same, in item order."""
    handler, peak = concurrency_probe()
    results = output(run({"Map": distributed_map()}, handler, execution_input=items(60)))
    assert results == items(60)["items"]
    assert 1 < peak[0] <= moto_patches.MAP_RUN_WORKERS


def test_max_concurrency_still_bounds_the_children():
    handler, peak = concurrency_probe()
    results = output(run({"Map": distributed_map(MaxConcurrency=2)}, handler, execution_input=items(12)))
    assert results == items(12)["items"] and peak[0] <= 2


# ------------------------------------------------------------------------------------------------------------
# Seam 15: the Map Run and its children through the API
# ------------------------------------------------------------------------------------------------------------


def test_the_map_run_and_its_child_executions_are_listed_and_described():
    seen: dict[str, Any] = {}

    def inspect(sfn: Any, arn: str) -> None:
        (listed,) = sfn.list_map_runs(executionArn=arn)["mapRuns"]
        seen["listed"] = listed
        seen["described"] = sfn.describe_map_run(mapRunArn=listed["mapRunArn"])
        seen["children"] = sfn.list_executions(mapRunArn=listed["mapRunArn"])["executions"]
        seen["failed"] = sfn.list_executions(mapRunArn=listed["mapRunArn"], statusFilter="FAILED")["executions"]
        seen["child"] = sfn.describe_execution(executionArn=seen["failed"][0]["executionArn"])

    output(
        run({"Map": distributed_map(ToleratedFailureCount=1)}, execution_input=items(3, failing=(1,)), after=inspect)
    )
    described = seen["described"]
    assert described["status"] == "SUCCEEDED" and described["executionArn"] == seen["listed"]["executionArn"]
    counts = {k: described["itemCounts"][k] for k in ("total", "succeeded", "failed", "running", "pending")}
    assert counts == {"total": 3, "succeeded": 2, "failed": 1, "running": 0, "pending": 0}
    assert described["executionCounts"]["failed"] == 1 and described["executionCounts"]["running"] == 0
    children = seen["children"]
    assert len(children) == 3 and all(c["mapRunArn"] == seen["listed"]["mapRunArn"] for c in children)
    assert sorted(c["status"] for c in children) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert all(c["stateMachineArn"] == seen["listed"]["stateMachineArn"] for c in children)
    assert len(seen["failed"]) == 1
    child = seen["child"]
    assert child["status"] == "FAILED" and json.loads(child["input"]) == {"n": 1, "fail": True}
    assert child["error"] == "ItemFailed" and child["mapRunArn"] == seen["listed"]["mapRunArn"]


def test_a_child_is_an_execution_of_its_own_in_its_context_object():
    state = distributed_map()
    state["ItemProcessor"]["States"]["Work"] = {
        "Type": "Pass",
        "Output": {"id": "{% $states.context.Execution.Id %}", "input": "{% $states.context.Execution.Input %}"},
        "End": True,
    }
    seen: dict[str, Any] = {}

    def children(sfn: Any, arn: str) -> None:
        (listed,) = sfn.list_map_runs(executionArn=arn)["mapRuns"]
        seen["arns"] = {c["executionArn"] for c in sfn.list_executions(mapRunArn=listed["mapRunArn"])["executions"]}

    results = output(run({"Map": state}, execution_input=items(2), after=children))
    assert {r["id"] for r in results} == seen["arns"] and [r["input"] for r in results] == items(2)["items"]


# ------------------------------------------------------------------------------------------------------------
# Seam 16: a ListObjectsV2 ItemReader reads every page
# ------------------------------------------------------------------------------------------------------------


def test_a_list_objects_item_reader_reads_every_page():
    """AWS: an ItemReader over s3:listObjectsV2 iterates every object under the prefix (moto read one page)."""

    def put(s3: Any) -> None:
        for i in range(5):
            s3.put_object(Bucket="data", Key=f"in/{i}.csv", Body=b"x")

    state = distributed_map(
        ItemReader={
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Arguments": {"Bucket": "data", "Prefix": "in/", "MaxKeys": 2},
        },
        ItemSelector={"key": "{% $states.context.Map.Item.Value.Key %}"},
    )
    del state["Items"]
    results = output(run({"Map": state}, buckets=("data",), before=put))
    assert [r["key"] for r in results] == [f"in/{i}.csv" for i in range(5)]
