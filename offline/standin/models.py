"""The stand-in's resources: tuning jobs, training jobs, models, endpoint configurations and endpoints.

Each one describes itself as SageMaker's Describe* (``describe()``) and List* (``summary()``) responses do.
They hold no lock of their own: the backend's lock guards every read and write of them.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import numpy as np

from . import kmeans
from .search import Range, Searcher

MAX_FAILURE_REASON = 1024
IN_PROGRESS_ENDPOINT = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


def now() -> float:
    return time.time()


def clip_reason(reason: str) -> str:
    """A FailureReason as long as SageMaker allows."""
    return reason if len(reason) <= MAX_FAILURE_REASON else reason[: MAX_FAILURE_REASON - 3] + "..."


def arn(region: str, account_id: str, kind: str, name: str) -> str:
    partition = "aws-cn" if region.startswith("cn-") else ("aws-us-gov" if region.startswith("us-gov-") else "aws")
    return f"arn:{partition}:sagemaker:{region}:{account_id}:{kind}/{name.lower()}"


# -- training ------------------------------------------------------------------------------------


class TrainingJob:
    """One training job of a tuning job; ``transition``/``finish`` are called with the backend's lock held."""

    def __init__(self, name, arn, tuning, index, tuned, hyperparameters, now):
        self.name, self.arn, self.tuning, self.index = name, arn, tuning, index
        self.tuned = tuned
        self.hyperparameters = hyperparameters
        self.status = "InProgress"
        self.secondary = "Starting"
        self.transitions = [
            {"Status": "Starting", "StartTime": now, "StatusMessage": "Preparing the instances for training"}
        ]
        self.created = self.modified = now
        self.started: float | None = None
        self.ended: float | None = None
        self.failure_reason: str | None = None
        self.metrics: dict[str, float] = {}
        self.metrics_time: float | None = None
        self.artifact: str | None = None
        self.objective: float | None = None
        self.stop = threading.Event()

    @property
    def objective_status(self) -> str:
        if self.status == "Completed" and self.objective is not None:
            return "Succeeded"
        if self.status in ("InProgress", "Stopping"):
            return "Pending"
        return "Failed"

    def transition(self, status: str, message: str) -> None:
        """Enter a new secondary status."""
        t = now()
        if self.transitions and "EndTime" not in self.transitions[-1]:
            self.transitions[-1]["EndTime"] = t
        self.transitions.append({"Status": status, "StartTime": t, "StatusMessage": message})
        self.secondary = status
        self.modified = t

    def finish(self, status: str, secondary: str, message: str) -> None:
        t = now()
        self.status = status
        self.ended = t
        if self.started is None:
            self.started = t
        self.transition(secondary, message)
        self.transitions[-1]["EndTime"] = t
        self.modified = t
        self.tuning.modified = t

    def summary(self) -> dict:
        """A TrainingJobSummary (HyperParameterTrainingJobSummary)."""
        out = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "TuningJobName": self.tuning.name,
            "CreationTime": self.created,
            "TrainingStartTime": self.started,
            "TrainingEndTime": self.ended,
            "TrainingJobStatus": self.status,
            "TunedHyperParameters": dict(self.tuned),
            "FailureReason": self.failure_reason,
            "ObjectiveStatus": self.objective_status,
        }
        if self.objective is not None:
            out["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": self.tuning.objective_metric,
                "Value": self.objective,
            }
        return out

    def describe(self) -> dict:
        d = self.tuning.definition
        algo = d["AlgorithmSpecification"]
        channels = []
        for ch in d.get("InputDataConfig") or []:
            ch = copy.deepcopy(ch)
            ch["DataSource"]["S3DataSource"].setdefault("S3DataDistributionType", "FullyReplicated")
            ch.setdefault("CompressionType", "None")
            ch.setdefault("RecordWrapperType", "None")
            channels.append(ch)
        output = copy.deepcopy(d["OutputDataConfig"])
        output.setdefault("CompressionType", "GZIP")
        stopping = copy.deepcopy(d.get("StoppingCondition") or {})
        stopping.setdefault("MaxRuntimeInSeconds", 86400)
        seconds = None
        if self.ended is not None and self.started is not None:
            seconds = max(1, int(round(self.ended - self.started)))
        return {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "TuningJobArn": self.tuning.arn,
            "ModelArtifacts": {"S3ModelArtifacts": self.artifact} if self.artifact else None,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary,
            "FailureReason": self.failure_reason,
            "HyperParameters": dict(self.hyperparameters),
            "AlgorithmSpecification": {
                "TrainingImage": algo["TrainingImage"],
                "TrainingInputMode": algo["TrainingInputMode"],
                "MetricDefinitions": copy.deepcopy(kmeans.METRIC_DEFINITIONS),
                "EnableSageMakerMetricsTimeSeries": False,
            },
            "RoleArn": d["RoleArn"],
            "InputDataConfig": channels,
            "OutputDataConfig": output,
            "ResourceConfig": copy.deepcopy(d["ResourceConfig"]),
            "VpcConfig": copy.deepcopy(d.get("VpcConfig")),
            "StoppingCondition": stopping,
            "CreationTime": self.created,
            "TrainingStartTime": self.started,
            "TrainingEndTime": self.ended,
            "LastModifiedTime": self.modified,
            "SecondaryStatusTransitions": copy.deepcopy(self.transitions),
            "FinalMetricDataList": [
                {"MetricName": k, "Value": v, "Timestamp": self.metrics_time} for k, v in self.metrics.items()
            ]
            or None,
            "EnableNetworkIsolation": bool(d.get("EnableNetworkIsolation", False)),
            "EnableInterContainerTrafficEncryption": bool(d.get("EnableInterContainerTrafficEncryption", False)),
            "EnableManagedSpotTraining": bool(d.get("EnableManagedSpotTraining", False)),
            "CheckpointConfig": copy.deepcopy(d.get("CheckpointConfig")),
            "TrainingTimeInSeconds": seconds,
            "BillableTimeInSeconds": seconds,
            "Environment": copy.deepcopy(d.get("Environment")),
            "RetryStrategy": copy.deepcopy(d.get("RetryStrategy")),
        }


class TuningJob:
    def __init__(self, name, arn, request, now, tags):
        self.name, self.arn = name, arn
        self.request = request
        self.config = request["HyperParameterTuningJobConfig"]
        self.definition = request["TrainingJobDefinition"]
        self.objective_metric = self.config["HyperParameterTuningJobObjective"]["MetricName"]
        self.status = "InProgress"
        self.created = self.modified = now
        self.ended: float | None = None
        self.failure_reason: str | None = None
        self.jobs: list[TrainingJob] = []
        self.stop_requested = False
        self.tags = tags
        self.fault_tuning: str | None = None
        self.fault_training: str | None = None
        self.searcher: Searcher | None = None
        self.random_seed = 0  # RandomSeed, or the one drawn for it
        self.ranges: list[Range] = []
        self.static: dict[str, str] = {}
        self.warm_history: list[tuple[dict[str, str], float]] = []
        self.data: Any = None
        self.data_lock = threading.Lock()

    def fail(self, reason: str) -> None:
        self.status = "Failed"
        self.failure_reason = clip_reason(reason)
        self.ended = self.modified = now()

    def describe(self) -> dict:
        jobs = self.jobs
        counters = {
            "Completed": sum(j.status == "Completed" for j in jobs),
            "InProgress": sum(j.status in ("InProgress", "Stopping") for j in jobs),
            "RetryableError": 0,
            "NonRetryableError": sum(j.status == "Failed" for j in jobs),
            "Stopped": sum(j.status == "Stopped" for j in jobs),
        }
        objectives = {
            "Succeeded": sum(j.objective_status == "Succeeded" for j in jobs),
            "Pending": sum(j.objective_status == "Pending" for j in jobs),
            "Failed": sum(j.objective_status == "Failed" for j in jobs),
        }
        scored = [j for j in jobs if j.objective_status == "Succeeded"]
        best = min(scored, key=lambda j: (j.objective, j.index)) if scored else None
        out = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": self.arn,
            "HyperParameterTuningJobConfig": copy.deepcopy(self.request["HyperParameterTuningJobConfig"]),
            "TrainingJobDefinition": copy.deepcopy(self.request["TrainingJobDefinition"]),
            "HyperParameterTuningJobStatus": self.status,
            "CreationTime": self.created,
            "HyperParameterTuningEndTime": self.ended,
            "LastModifiedTime": self.modified,
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objectives,
            "BestTrainingJob": best.summary() if best else None,
            "WarmStartConfig": copy.deepcopy(self.request.get("WarmStartConfig")),
            "FailureReason": self.failure_reason,
        }
        if self.ended is not None:
            out["ConsumedResources"] = {"RuntimeInSeconds": max(1, int(round(self.ended - self.created)))}
        return out


# -- hosting -------------------------------------------------------------------------------------


class Model:
    def __init__(self, name, arn, request, now):
        self.name, self.arn, self.request, self.created = name, arn, request, now

    def describe(self) -> dict:
        out = copy.deepcopy(self.request)
        out.update({"ModelName": self.name, "ModelArn": self.arn, "CreationTime": self.created})
        out.setdefault("EnableNetworkIsolation", False)
        return out

    def summary(self) -> dict:
        return {"ModelName": self.name, "ModelArn": self.arn, "CreationTime": self.created}


class EndpointConfig:
    def __init__(self, name, arn, request, now):
        self.name, self.arn, self.request, self.created = name, arn, request, now

    def describe(self) -> dict:
        out = copy.deepcopy(self.request)
        out.update(self.summary())
        return out

    def summary(self) -> dict:
        return {"EndpointConfigName": self.name, "EndpointConfigArn": self.arn, "CreationTime": self.created}


class Variant:
    """A production variant as deployed: its container image and the centroids it serves."""

    def __init__(self, spec: dict, image: str, centroids: np.ndarray):
        self.spec, self.image, self.centroids = spec, image, centroids
        self.name = spec["VariantName"]
        self.weight = float(spec.get("InitialVariantWeight", 1.0))


class Endpoint:
    def __init__(self, name, arn, config_name, now, tags):
        self.name, self.arn = name, arn
        self.config_name = config_name  # the config serving (or being created)
        self.pending_config: str | None = None
        self.pending_since: float | None = None
        self.status = "Creating"
        self.failure_reason: str | None = None
        self.created = self.modified = now
        self.variants: list[Variant] | None = None
        self.variant_specs: list[dict] = []
        self.deployment_config: dict | None = None
        self.generation = 0
        self.tags = tags

    def _variant_summaries(self) -> list[dict] | None:
        out = []
        for spec in self.variant_specs:
            serving = self.variants is not None
            summary = {
                "VariantName": spec["VariantName"],
                "CurrentWeight": float(spec.get("InitialVariantWeight", 1.0)) if serving else None,
                "DesiredWeight": float(spec.get("InitialVariantWeight", 1.0)),
                "CurrentInstanceCount": spec.get("InitialInstanceCount") if serving else None,
                "DesiredInstanceCount": spec.get("InitialInstanceCount"),
            }
            if serving:
                image = next((v.image for v in self.variants if v.name == spec["VariantName"]), None)
                if image:
                    summary["DeployedImages"] = [
                        {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": self.modified}
                    ]
            elif self.status == "Creating":
                summary["VariantStatus"] = [
                    {"Status": "Creating", "StatusMessage": "Launching instances", "StartTime": self.created}
                ]
            if spec.get("ServerlessConfig"):
                summary["CurrentServerlessConfig"] = copy.deepcopy(spec["ServerlessConfig"]) if serving else None
                summary["DesiredServerlessConfig"] = copy.deepcopy(spec["ServerlessConfig"])
            out.append(summary)
        return out or None

    def describe(self) -> dict:
        out = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config_name,
            "ProductionVariants": self._variant_summaries() if self.status != "Failed" else None,
            "EndpointStatus": self.status,
            "FailureReason": self.failure_reason,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "LastDeploymentConfig": copy.deepcopy(self.deployment_config),
        }
        if self.pending_config:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": self.pending_config,
                "StartTime": self.pending_since,
            }
        return out

    def summary(self) -> dict:
        return {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "EndpointStatus": self.status,
        }
