"""Check tuning job: one look at the tuning job; the state machine decides whether to wait again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kmeans_pipeline.aws.clients import sagemaker_call
from kmeans_pipeline.errors import Failure
from kmeans_pipeline.model.algorithm import OBJECTIVE
from kmeans_pipeline.schemas.results import BestTrainingJob, TuningStatus
from kmeans_pipeline.schemas.run import RunConfig

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


def _counters(job: Mapping[str, Any]) -> dict[str, int]:
    c = job.get("TrainingJobStatusCounters", {})
    return {
        "completed": c.get("Completed", 0),
        "inProgress": c.get("InProgress", 0),
        "failed": c.get("RetryableError", 0) + c.get("NonRetryableError", 0),
        "stopped": c.get("Stopped", 0),
    }


def failed_training_reasons(sagemaker: SageMakerClient, name: str, limit: int = 3) -> list[str]:
    """Distinct FailureReasons of the tuning job's failed training jobs, verbatim."""
    reasons: list[str] = []
    summaries = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, StatusEquals="Failed", MaxResults=100
    ).get("TrainingJobSummaries", [])
    for summary in summaries:
        reason = summary.get("FailureReason", "")
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons[:limit]


def _failure(
    sagemaker: SageMakerClient,
    name: str,
    status: str,
    job: Mapping[str, Any],
    counters: dict,
    budget: int,
    error: Failure,
    what: str,
) -> TuningStatus:
    reason = job.get("FailureReason", "") or ""
    training_reasons = failed_training_reasons(sagemaker, name) if counters["failed"] else []
    cause = f"Tuning job {name} {what}"
    if reason:
        cause += f": {reason}"
    if training_reasons:
        cause = cause.rstrip(".") + ". Failed training jobs said: " + " | ".join(training_reasons)
    elif not reason:
        cause += " (SageMaker gave no FailureReason)"
    return TuningStatus(
        outcome="failed",
        status=status,
        error=error,
        cause=cause,
        failure_reason=reason,
        training_jobs=counters,
        budget=budget,
    )


def check_tuning(config: RunConfig, tuning_job_name: str, sagemaker: SageMakerClient) -> TuningStatus:
    with sagemaker_call("DescribeHyperParameterTuningJob", tuning_job_name):
        job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)
        status = job["HyperParameterTuningJobStatus"]
        counters = _counters(job)
        budget = job["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]
        best = job.get("BestTrainingJob")
        best_value = best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] if best else None

        if status in {"InProgress", "Stopping"}:
            return TuningStatus(
                outcome="running", status=status, training_jobs=counters, budget=budget, best_so_far=best_value
            )
        if status == "Completed" and best:
            return TuningStatus(
                outcome="completed",
                status=status,
                training_jobs=counters,
                budget=budget,
                best_so_far=best_value,
                best=_best_training_job(sagemaker, best),
            )
        error, reason = {
            "Completed": (Failure.NO_BEST_TRAINING_JOB, "completed without a best training job"),
            "Stopped": (Failure.TUNING_JOB_STOPPED, "was stopped before it chose a model"),
        }.get(status, (Failure.TUNING_JOB_FAILED, f"ended {status}"))
        return _failure(sagemaker, tuning_job_name, status, job, counters, budget, error, reason)


def _best_training_job(sagemaker: SageMakerClient, best: Mapping[str, Any]) -> BestTrainingJob:
    name = best["TrainingJobName"]
    with sagemaker_call("DescribeTrainingJob", name):
        job = sagemaker.describe_training_job(TrainingJobName=name)
    metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    value = metrics.get(OBJECTIVE, best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    hyperparameters = {k: v for k, v in job.get("HyperParameters", {}).items() if not k.startswith("_")}
    return BestTrainingJob(
        training_job_name=name,
        hyperparameters=hyperparameters,
        test_msd=value,
        artifact_uri=job["ModelArtifacts"]["S3ModelArtifacts"],
    )
