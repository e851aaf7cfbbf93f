"""Clean up superseded models: after a verified deploy, delete this stack's superseded models and endpoint configs beyond the newest N.

Never deleted: the config the endpoint serves, one an update is deploying, this run's, and any created after
this run's (another execution's, still on its way to the endpoint).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kmeans_pipeline.aws.clients import sagemaker_call
from kmeans_pipeline.aws.endpoints import describe_endpoint
from kmeans_pipeline.schemas.results import CleanUpResult
from kmeans_pipeline.schemas.run import RunConfig

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


def _run_resources(pages: Any, key: str, name_key: str, pattern: re.Pattern) -> dict[str, Any]:
    found = {}
    for page in pages:
        for item in page[key]:
            if pattern.fullmatch(item[name_key]):
                found[item[name_key]] = item["CreationTime"]
    return found


def clean_up(config: RunConfig, prefix: str, keep: int, sagemaker: SageMakerClient) -> CleanUpResult:
    ours = config.names.endpoint_config
    pattern = re.compile(re.escape(prefix) + r"-[0-9a-f]{10}")  # this stack's run names (names.run_resource_name)
    with sagemaker_call("ListEndpointConfigs", prefix):
        configs = _run_resources(
            sagemaker.get_paginator("list_endpoint_configs").paginate(NameContains=prefix),
            "EndpointConfigs",
            "EndpointConfigName",
            pattern,
        )
        models = _run_resources(
            sagemaker.get_paginator("list_models").paginate(NameContains=prefix), "Models", "ModelName", pattern
        )
    endpoint = describe_endpoint(sagemaker, config.names.endpoint)
    protected = {ours} | (endpoint.configs if endpoint is not None else set())
    ours_created = configs.get(ours)
    if ours_created is not None:
        protected |= {name for name, created in configs.items() if created > ours_created}
    # Runs by age, newest first; a run's model and endpoint config share its name.
    runs = sorted(set(configs) | set(models), key=lambda name: configs.get(name) or models[name], reverse=True)
    kept = [name for name in runs if name in protected]
    for name in runs:
        if name not in protected and len(kept) < keep:
            kept.append(name)
    doomed = [name for name in runs if name not in kept]
    for name in doomed:
        if name in configs:
            with sagemaker_call("DeleteEndpointConfig", name):
                sagemaker.delete_endpoint_config(EndpointConfigName=name)
        if name in models:
            with sagemaker_call("DeleteModel", name):
                sagemaker.delete_model(ModelName=name)
    return CleanUpResult(kept=sorted(kept), deleted=doomed)
