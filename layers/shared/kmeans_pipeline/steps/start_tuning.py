"""Start hyperparameter tuning: create the K-Means tuning job for this run (or find it on a retry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.clients import create_or_reuse, error_code, sagemaker_call
from kmeans_pipeline.errors import ResourceConflictError
from kmeans_pipeline.model.algorithm import EXTRA_CENTER_FACTOR, INIT_METHODS, MINI_BATCH_SIZE, OBJECTIVE
from kmeans_pipeline.schemas.dataset import Dataset
from kmeans_pipeline.schemas.results import TuningJobStarted
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

MAX_RUNTIME_SECONDS = 3600
VOLUME_SIZE_GB = 30


def tuning_request(config: RunConfig, dataset: Dataset, settings: StackSettings) -> dict:
    """The CreateHyperParameterTuningJob request for this run (pure, so tests can read it whole)."""
    static = {"k": str(dataset.k), "feature_dim": str(dataset.feature_dim)}
    integer_ranges = [
        {
            "Name": "extra_center_factor",
            "MinValue": str(EXTRA_CENTER_FACTOR[0]),
            "MaxValue": str(EXTRA_CENTER_FACTOR[1]),
        }
    ]
    instances = settings.training_instance_count
    # A mini-batch larger than one instance's share of the training set is meaningless: cap the range there.
    batch_high = max(1, min(MINI_BATCH_SIZE[1], dataset.train_rows // instances))
    batch_low = min(MINI_BATCH_SIZE[0], batch_high)
    if batch_low < batch_high:
        integer_ranges.append({"Name": "mini_batch_size", "MinValue": str(batch_low), "MaxValue": str(batch_high)})
    else:
        static["mini_batch_size"] = str(batch_high)

    channel = {
        "ContentType": dataset.content_type,
        "CompressionType": "None",
        "RecordWrapperType": "None",
        "InputMode": "File",
    }
    tags = settings.tag_list(RunId=config.run_id, ExecutionName=config.execution_name)
    return {
        "HyperParameterTuningJobName": config.names.tuning_job,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": OBJECTIVE},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": config.max_training_jobs,
                "MaxParallelTrainingJobs": config.max_parallel_training_jobs,
            },
            "ParameterRanges": {
                "IntegerParameterRanges": integer_ranges,
                "ContinuousParameterRanges": [],
                "CategoricalParameterRanges": [{"Name": "init_method", "Values": INIT_METHODS}],
            },
            "TrainingJobEarlyStoppingType": "Auto",
            # The run's seed makes the search's proposals more consistent between runs on SageMaker (it does not
            # seed the K-Means training itself, which has no seed hyperparameter); offline it makes them equal.
            "RandomSeed": config.seed,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            "AlgorithmSpecification": {"TrainingImage": settings.kmeans_image_uri, "TrainingInputMode": "File"},
            "RoleArn": settings.sagemaker_role_arn,
            "InputDataConfig": [
                {
                    "ChannelName": name,
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}
                    },
                    **channel,
                }
                for name, uri, distribution in (
                    # Several instances split the training shards between them; each scores the whole test set.
                    ("train", dataset.train_uri, "ShardedByS3Key" if instances > 1 else "FullyReplicated"),
                    ("test", dataset.test_uri, "FullyReplicated"),
                )
            ],
            "OutputDataConfig": {
                "S3OutputPath": f"s3://{settings.data_bucket}/{config.model_prefix}",
                "KmsKeyId": settings.kms_key_arn,
            },
            "ResourceConfig": {
                "InstanceType": settings.training_instance_type,
                "InstanceCount": instances,
                "VolumeSizeInGB": VOLUME_SIZE_GB,
                "VolumeKmsKeyId": settings.kms_key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
        },
        "Tags": tags,
    }


def _describe_tuning_job(sagemaker: SageMakerClient, name: str) -> Mapping[str, Any] | None:
    try:
        return sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFound":
            return None
        raise


def start_tuning(
    config: RunConfig, dataset: Dataset, settings: StackSettings, sagemaker: SageMakerClient
) -> TuningJobStarted:
    request = tuning_request(config, dataset, settings)
    name = request["HyperParameterTuningJobName"]
    with sagemaker_call("DescribeHyperParameterTuningJob", name):
        job, reused = create_or_reuse(
            create=lambda: sagemaker.create_hyper_parameter_tuning_job(**request),
            describe=lambda: _describe_tuning_job(sagemaker, name),
            operation="CreateHyperParameterTuningJob",
            resource=name,
        )
    if reused:
        theirs = job.get("TrainingJobDefinition", {}).get("InputDataConfig", [])
        if [c["DataSource"]["S3DataSource"]["S3Uri"] for c in theirs] != [dataset.train_uri, dataset.test_uri]:
            raise ResourceConflictError(f"Tuning job {name} exists but was not started on this run's dataset")
    return TuningJobStarted(tuning_job_name=name, tuning_job_arn=job["HyperParameterTuningJobArn"], reused=reused)
