"""The SageMaker backend: one method per SageMaker API operation, on the resources of a ``State``.

A method takes the operation's deserialised request members and returns its response members (``None``
values are dropped on the wire); it raises a typed error from ``exceptions.py``. ``call`` maps an operation
name to its method (``CreateEndpoint`` -> ``create_endpoint``). Request checks live in ``validators.py``,
the resources in ``models.py``, the background work in ``training.py`` and ``hosting.py``.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from typing import Any

import botocore.exceptions
import numpy as np

from . import hosting, training, validators
from .exceptions import (
    ResourceInUse,
    ResourceLimitExceeded,
    ResourceNotFound,
    ThrottlingException,
    UnknownOperationException,
    ValidationException,
)
from .models import IN_PROGRESS_ENDPOINT, Endpoint, EndpointConfig, Model, TuningJob, now
from .search import Range, Searcher
from .state import State

OPERATIONS = (
    "CreateHyperParameterTuningJob",
    "DescribeHyperParameterTuningJob",
    "ListTrainingJobsForHyperParameterTuningJob",
    "StopHyperParameterTuningJob",
    "DescribeTrainingJob",
    "CreateModel",
    "DescribeModel",
    "DeleteModel",
    "ListModels",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "DeleteEndpointConfig",
    "ListEndpointConfigs",
    "CreateEndpoint",
    "DescribeEndpoint",
    "UpdateEndpoint",
    "DeleteEndpoint",
    "ListEndpoints",
    "AddTags",
    "ListTags",
)


def method_name(operation: str) -> str:
    """``ListTrainingJobsForHyperParameterTuningJob`` -> ``list_training_jobs_for_hyper_parameter_tuning_job``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def paginate(items: list, params: dict, default_max: int = 10) -> tuple[list, str | None]:
    """One page of a List* response and the NextToken of the next one."""
    max_results = validators.check_max_results(params.get("MaxResults", default_max))
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
            if start < 0:
                raise ValueError
        except Exception:
            raise ValidationException("Invalid pagination token") from None
    page = items[start : start + max_results]
    nxt = None
    if start + max_results < len(items):
        nxt = base64.urlsafe_b64encode(f"standin:{start + max_results}".encode()).decode()
    return page, nxt


def _filter_and_sort(items: list, p: dict, with_modified: bool = False) -> list:
    """The NameContains / CreationTime* (/ LastModifiedTime*) filters and the SortBy / SortOrder of a List*."""
    contains = p.get("NameContains")
    if contains:
        items = [i for i in items if contains.lower() in i.name.lower()]
    for bound, cmp in (("CreationTimeBefore", float.__lt__), ("CreationTimeAfter", float.__gt__)):
        if p.get(bound) is not None:
            items = [i for i in items if cmp(float(i.created), float(p[bound]))]
    if with_modified:
        for bound, cmp in (("LastModifiedTimeBefore", float.__lt__), ("LastModifiedTimeAfter", float.__gt__)):
            if p.get(bound) is not None:
                items = [i for i in items if cmp(float(i.modified), float(p[bound]))]
    sort_by = p.get("SortBy") or "CreationTime"
    order = p.get("SortOrder") or "Descending"
    if sort_by not in ("Name", "CreationTime") and not (with_modified and sort_by == "Status"):
        raise ValidationException(f"Invalid SortBy value '{sort_by}'.")
    if order not in ("Ascending", "Descending"):
        raise ValidationException(f"Invalid SortOrder value '{order}'.")
    key = {
        "Name": lambda i: i.name.lower(),
        "CreationTime": lambda i: i.created,
        "Status": lambda i: getattr(i, "status", ""),
    }[sort_by]
    return sorted(items, key=key, reverse=order == "Descending")


class SageMakerBackend(State):
    """SageMaker's operations on the resources of one account and region."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._throttle_key: tuple | None = None
        self._throttle_counts: dict[tuple[str, str], int] = {}

    # -- checks that need AWS --------------------------------------------------------------------------

    def _check_kms(self, key_id: Any, field: str) -> None:
        describe = (lambda key: self.client("kms").describe_key(KeyId=key)) if self.verify_kms_keys else None
        validators.check_kms(key_id, field, describe)

    def _check_model_data(self, url: Any, field: str) -> None:
        bucket, key = validators.parse_s3_uri(url, field)
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket", "403", "AccessDenied"):
                raise ValidationException(f"Could not find model data at {url}.") from None
            raise

    # -- lookups ------------------------------------------------------------------------------------------

    def _tuning_job(self, name: Any) -> TuningJob:
        tj = self.tuning_jobs.get(str(name).lower())
        if tj is None:
            raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {name}")
        return tj

    def _model(self, name: Any) -> Model:
        m = self.models.get(str(name).lower())
        if m is None:
            raise ValidationException(f'Could not find model "{self.arn("model", str(name))}".')
        return m

    def _endpoint_config(self, name: Any) -> EndpointConfig:
        c = self.endpoint_configs.get(str(name).lower())
        if c is None:
            raise ValidationException(
                f'Could not find endpoint configuration "{self.arn("endpoint-config", str(name))}".'
            )
        return c

    def _endpoint(self, name: Any) -> Endpoint:
        ep = self.endpoints.get(str(name).lower())
        if ep is None:
            raise ValidationException(f'Could not find endpoint "{self.arn("endpoint", str(name))}".')
        return ep

    def _tagged(self, resource_arn: Any) -> list[dict[str, str]]:
        if not isinstance(resource_arn, str) or len(resource_arn) > 256:
            raise ValidationException(f"Invalid ResourceArn '{resource_arn}'.")
        tags = self.tags.get(resource_arn)
        if tags is None:
            for key, value in self.tags.items():
                if key.lower() == resource_arn.lower():
                    return value
            raise ValidationException(f"Resource {resource_arn} not found.")
        return tags

    # -- dispatch ------------------------------------------------------------------------------------

    def call(self, operation: str, params: dict) -> dict:
        """Run one SageMaker API operation on already-deserialised parameters."""
        if operation not in OPERATIONS:
            raise UnknownOperationException(
                f"The SageMaker stand-in does not implement {operation}. It implements: "
                + ", ".join(sorted(OPERATIONS))
            )
        self._maybe_throttle(operation)
        return getattr(self, method_name(operation))(params)

    def reset_throttling(self) -> None:
        """Start counting the first ``faults.throttle_creates`` calls of each operation again."""
        with self.lock:
            self._throttle_key = None
            self._throttle_counts.clear()

    def _maybe_throttle(self, operation: str) -> None:
        if not (operation.startswith("Create") or operation == "UpdateEndpoint"):
            return
        with self.lock:
            throttle = int(self.faults.throttle_creates or 0)
            limit = int(self.faults.limit_creates or 0) if operation.startswith("Create") else 0
            if self.faults.limit_only not in {None, operation}:
                limit = 0
            key = (id(self.faults), throttle, limit)
            if key != self._throttle_key:
                self._throttle_key = key
                self._throttle_counts = {}
            for fault, n in (("throttle", throttle), ("limit", limit)):
                done = self._throttle_counts.get((fault, operation), 0)
                if done < n:
                    self._throttle_counts[(fault, operation)] = done + 1
                    if fault == "throttle":
                        raise ThrottlingException("Rate exceeded")
                    raise ResourceLimitExceeded(
                        f"The account-level service limit for {operation} has been reached. Please contact AWS "
                        "support to request an increase for this limit."
                    )

    # == hyperparameter tuning and training jobs ======================================================

    def create_hyper_parameter_tuning_job(self, p: dict) -> dict:
        spec = validators.check_tuning_job(p, self.region, self._check_kms)
        parents = self._warm_start_history(p.get("WarmStartConfig"), spec.ranges)
        name = spec.name
        request = copy.deepcopy({k: v for k, v in p.items() if k != "Tags"})
        config = request["HyperParameterTuningJobConfig"]
        config.setdefault("HyperParameterTuningJobObjective", spec.objective)
        config["ResourceLimits"].setdefault("MaxNumberOfTrainingJobs", spec.max_jobs)
        config.setdefault("TrainingJobEarlyStoppingType", "Off")
        resource_arn = self.arn("hyper-parameter-tuning-job", name)
        seed = (p.get("HyperParameterTuningJobConfig") or {}).get("RandomSeed")
        if seed is None:  # as SageMaker: without a seed, every tuning job searches and trains differently
            seed = secrets.randbits(63)
        rng = np.random.default_rng(seed)
        with self.lock:
            if name.lower() in self.tuning_jobs:
                raise ResourceInUse(f"Hyperparameter tuning job {name} already exists.")
            tj = TuningJob(name, resource_arn, request, now(), spec.tags)
            tj.ranges, tj.static = spec.ranges, spec.static
            tj.searcher = Searcher(spec.ranges, spec.strategy, spec.max_jobs, rng)
            tj.random_seed = seed
            tj.fault_tuning = self.faults.tuning_job_fails
            tj.fault_training = self.faults.training_jobs_fail
            tj.warm_history = parents
            self.add(self.tuning_jobs, tj, spec.tags)
        self.spawn(training.run_tuning, self, tj, name=f"standin-tuning-{name}")
        return {"HyperParameterTuningJobArn": resource_arn}

    def _warm_start_history(self, warm: dict | None, ranges: list[Range]) -> list:
        """The parents' scored configurations that lie in this job's ranges."""
        if not warm:
            return []
        parents = warm.get("ParentHyperParameterTuningJobs") or []
        if not 1 <= len(parents) <= 5:
            raise ValidationException("WarmStartConfig needs 1 to 5 ParentHyperParameterTuningJobs.")
        history = []
        with self.lock:
            for parent in parents:
                pname = parent.get("HyperParameterTuningJobName", "")
                ptj = self.tuning_jobs.get(pname.lower())
                if ptj is None:
                    raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {pname}")
                if ptj.status not in ("Completed", "Stopped", "Failed"):
                    raise ValidationException(
                        f"Parent tuning job {pname} is {ptj.status}: warm start needs finished jobs."
                    )
                for job in ptj.jobs:
                    if job.objective is None:
                        continue
                    if all(r.name in job.tuned and r.contains(job.tuned[r.name]) for r in ranges):
                        history.append(({r.name: job.tuned[r.name] for r in ranges}, job.objective))
        return history

    def describe_hyper_parameter_tuning_job(self, p: dict) -> dict:
        with self.lock:
            return self._tuning_job(p.get("HyperParameterTuningJobName")).describe()

    def list_training_jobs_for_hyper_parameter_tuning_job(self, p: dict) -> dict:
        sort_by, order = validators.check_list_training_jobs(p)
        status = p.get("StatusEquals")
        with self.lock:
            jobs = list(self._tuning_job(p.get("HyperParameterTuningJobName")).jobs)
            if status:
                jobs = [j for j in jobs if j.status == status]
            if sort_by == "FinalObjectiveMetricValue":
                jobs = [j for j in jobs if j.objective is not None]
            key = {
                "Name": lambda j: j.name,
                "CreationTime": lambda j: (j.created, j.index),
                "Status": lambda j: (j.status, j.name),
                "FinalObjectiveMetricValue": lambda j: (j.objective, j.index),
            }[sort_by]
            jobs.sort(key=key, reverse=order == "Descending")
            page, nxt = paginate(jobs, p)
            return {"TrainingJobSummaries": [j.summary() for j in page], "NextToken": nxt}

    def stop_hyper_parameter_tuning_job(self, p: dict) -> dict:
        with self.lock:
            tj = self._tuning_job(p.get("HyperParameterTuningJobName"))
            if tj.status != "InProgress":
                raise ValidationException(
                    f"The hyperparameter tuning job {tj.name} is {tj.status} and cannot be stopped: "
                    "only an InProgress tuning job can be stopped."
                )
            tj.stop_requested = True
            tj.status = "Stopping"
            tj.modified = now()
            for job in tj.jobs:
                if job.status == "InProgress":
                    job.stop.set()
                    job.status = "Stopping"
                    job.transition("Stopping", "Stopping the training job")
        return {}

    def describe_training_job(self, p: dict) -> dict:
        with self.lock:
            job = self.training_jobs.get(str(p.get("TrainingJobName")).lower())
            if job is None:
                raise ValidationException("Requested resource not found.")
            return job.describe()

    # == models ========================================================================================

    def create_model(self, p: dict) -> dict:
        name, tags = validators.check_model(p, self.region, self._check_model_data)
        resource_arn = self.arn("model", name)
        with self.lock:
            if name.lower() in self.models:
                raise ValidationException(f'Cannot create already existing model "{resource_arn}".')
            request = copy.deepcopy({k: v for k, v in p.items() if k != "Tags"})
            self.add(self.models, Model(name, resource_arn, request, now()), tags)
        return {"ModelArn": resource_arn}

    def describe_model(self, p: dict) -> dict:
        with self.lock:
            return self._model(p.get("ModelName")).describe()

    def delete_model(self, p: dict) -> dict:
        with self.lock:
            self.forget(self.models, self._model(p.get("ModelName")))
        return {}

    def list_models(self, p: dict) -> dict:
        with self.lock:
            page, nxt = paginate(_filter_and_sort(list(self.models.values()), p), p)
            return {"Models": [m.summary() for m in page], "NextToken": nxt}

    # == endpoint configurations =======================================================================

    def _model_exists(self, name: Any) -> None:
        with self.lock:
            self._model(name)

    def create_endpoint_config(self, p: dict) -> dict:
        name, tags = validators.check_endpoint_config(p, self._model_exists, self._check_kms)
        resource_arn = self.arn("endpoint-config", name)
        with self.lock:
            if name.lower() in self.endpoint_configs:
                raise ValidationException(f'Cannot create already existing endpoint configuration "{resource_arn}".')
            request = copy.deepcopy({k: v for k, v in p.items() if k != "Tags"})
            for v in request["ProductionVariants"]:
                if not v.get("ServerlessConfig"):
                    v.setdefault("InitialVariantWeight", 1.0)
            self.add(self.endpoint_configs, EndpointConfig(name, resource_arn, request, now()), tags)
        return {"EndpointConfigArn": resource_arn}

    def describe_endpoint_config(self, p: dict) -> dict:
        with self.lock:
            return self._endpoint_config(p.get("EndpointConfigName")).describe()

    def delete_endpoint_config(self, p: dict) -> dict:
        # SageMaker deletes a configuration even while an endpoint uses it.
        with self.lock:
            self.forget(self.endpoint_configs, self._endpoint_config(p.get("EndpointConfigName")))
        return {}

    def list_endpoint_configs(self, p: dict) -> dict:
        with self.lock:
            page, nxt = paginate(_filter_and_sort(list(self.endpoint_configs.values()), p), p)
            return {"EndpointConfigs": [c.summary() for c in page], "NextToken": nxt}

    # == endpoints =====================================================================================

    def create_endpoint(self, p: dict) -> dict:
        name = validators.check_name(p.get("EndpointName"), "EndpointName")
        tags = validators.check_tags(p.get("Tags"))
        resource_arn = self.arn("endpoint", name)
        with self.lock:
            if name.lower() in self.endpoints:
                raise ValidationException(f'Cannot create already existing endpoint "{resource_arn}".')
            config = self._endpoint_config(p.get("EndpointConfigName"))
            for v in config.request["ProductionVariants"]:
                self._model(v.get("ModelName"))
            ep = Endpoint(name, resource_arn, config.name, now(), tags)
            ep.variant_specs = copy.deepcopy(config.request["ProductionVariants"])
            ep.deployment_config = copy.deepcopy(p.get("DeploymentConfig"))
            ep.generation += 1
            self.add(self.endpoints, ep, tags)
            fault = self.faults.endpoint_creation_fails
            generation = ep.generation
        self.spawn(hosting.deploy, self, ep, config.name, generation, fault, False, name=f"standin-ep-{name}")
        return {"EndpointArn": resource_arn}

    def describe_endpoint(self, p: dict) -> dict:
        with self.lock:
            return self._endpoint(p.get("EndpointName")).describe()

    def update_endpoint(self, p: dict) -> dict:
        with self.lock:
            ep = self._endpoint(p.get("EndpointName"))
            if ep.status in IN_PROGRESS_ENDPOINT:
                raise ValidationException(f'Cannot update in-progress endpoint "{ep.arn}".')
            if ep.status != "InService":
                raise ValidationException(
                    f'Cannot update endpoint "{ep.arn}" with status {ep.status}: only '
                    "DeleteEndpoint is allowed on a failed endpoint."
                )
            config = self._endpoint_config(p.get("EndpointConfigName"))
            if config.name.lower() == ep.config_name.lower():
                raise ValidationException(
                    f'Endpoint "{ep.arn}" already uses endpoint configuration "{config.arn}": '
                    "UpdateEndpoint needs a new EndpointConfig."
                )
            for v in config.request["ProductionVariants"]:
                self._model(v.get("ModelName"))
            ep.status = "Updating"
            ep.failure_reason = None
            ep.pending_config = config.name
            ep.pending_since = ep.modified = now()
            if p.get("DeploymentConfig"):
                ep.deployment_config = copy.deepcopy(p["DeploymentConfig"])
            ep.generation += 1
            generation = ep.generation
            fault = self.faults.endpoint_update_fails
        self.spawn(hosting.deploy, self, ep, config.name, generation, fault, True, name=f"standin-ep-{ep.name}")
        return {"EndpointArn": ep.arn}

    def delete_endpoint(self, p: dict) -> dict:
        with self.lock:
            ep = self._endpoint(p.get("EndpointName"))
            if ep.status in IN_PROGRESS_ENDPOINT:
                raise ValidationException(f'Cannot update in-progress endpoint "{ep.arn}".')
            ep.status = "Deleting"
            ep.variants = None
            ep.failure_reason = None
            ep.modified = now()
            ep.generation += 1
            generation = ep.generation
        self.spawn(hosting.finish_delete, self, ep, generation, name=f"standin-ep-{ep.name}")
        return {}

    def list_endpoints(self, p: dict) -> dict:
        status = p.get("StatusEquals")
        with self.lock:
            items = list(self.endpoints.values())
            if status:
                items = [e for e in items if e.status == status]
            page, nxt = paginate(_filter_and_sort(items, p, with_modified=True), p)
            return {"Endpoints": [e.summary() for e in page], "NextToken": nxt}

    # == tags ==========================================================================================

    def add_tags(self, p: dict) -> dict:
        new = validators.check_tags(p.get("Tags"))
        with self.lock:
            tags = self._tagged(p.get("ResourceArn"))
            merged = {t["Key"]: t["Value"] for t in tags}
            merged.update({t["Key"]: t["Value"] for t in new})
            if len(merged) > 50:
                raise ValidationException(
                    f"Resource {p.get('ResourceArn')} would have {len(merged)} tags; at most 50 are allowed."
                )
            tags[:] = [{"Key": k, "Value": v} for k, v in merged.items()]
        return {"Tags": new}

    def list_tags(self, p: dict) -> dict:
        with self.lock:
            tags = list(self._tagged(p.get("ResourceArn")))
        page, nxt = paginate(tags, p, default_max=50)
        return {"Tags": page, "NextToken": nxt}
