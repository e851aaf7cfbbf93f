"""A tuning job's background work: propose, train and score its training jobs, as SageMaker's tuner does.

``run_tuning`` runs on its own thread (``State.spawn``) with up to ``max_workers_per_tuning_job``
training jobs at a time; each reads its channels from S3 (once per tuning job), trains K-Means for real,
scores the test channel and writes ``model.tar.gz`` with SSE-KMS, the way the built-in algorithm does.

Reproducible with a ``RandomSeed``: job n is proposed from the jobs 1..n-p only (p jobs at a time), once they have
all ended, so the proposals do not depend on which thread finishes first; and each job trains with a random
generator seeded by the tuning job's seed and its own hyperparameters. The same request on the same data then
gives the same training jobs, metrics and models. Without a seed, the tuning job draws one.
"""

from __future__ import annotations

import json
import logging
import secrets
import zlib
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import botocore.exceptions
import numpy as np

from . import kmeans
from .exceptions import JobFailure
from .models import TrainingJob, TuningJob, clip_reason, now
from .ndarray import write_model_tar_gz
from .state import State
from .validators import parse_s3_uri

log = logging.getLogger(__name__)

NO_SUCCESS_ATTEMPTS = 5  # SageMaker gives up a tuning job after this many failures and no success


def run_tuning(state: State, tj: TuningJob) -> None:
    try:
        _run_tuning_jobs(state, tj)
    except Exception as exc:  # a bug: fail the tuning job visibly
        log.exception("tuning job %s crashed", tj.name)
        with state.lock:
            tj.fail(f"InternalServerError: stand-in crashed: {exc!r}")


def _run_tuning_jobs(state: State, tj: TuningJob) -> None:
    limits = tj.config["ResourceLimits"]
    max_jobs = limits["MaxNumberOfTrainingJobs"]
    parallel = max(1, min(limits["MaxParallelTrainingJobs"], state.max_workers_per_tuning_job))
    if tj.fault_tuning:
        with state.lock:
            tj.fail(tj.fault_tuning)
        return
    launched = 0
    running: dict = {}
    with ThreadPoolExecutor(parallel, thread_name_prefix=f"standin-train-{tj.name}") as pool:
        while True:
            with state.lock:
                halted = state.halted.is_set()
                stopping = tj.stop_requested or halted
                failed = sum(1 for j in tj.jobs if j.status == "Failed")
                succeeded = sum(1 for j in tj.jobs if j.status == "Completed")
                give_up = failed >= NO_SUCCESS_ATTEMPTS and succeeded == 0
                while (
                    not stopping
                    and not give_up
                    and launched < max_jobs
                    and len(running) < parallel
                    and _proposable(tj, parallel)
                ):
                    job = _new_training_job(state, tj, parallel)
                    running[pool.submit(_run_training, state, tj, job)] = job
                    launched += 1
                if stopping:
                    for job in running.values():
                        job.stop.set()
                        if job.status == "InProgress":
                            job.status, job.modified = "Stopping", now()
                            job.transition("Stopping", "Stopping the training job")
            if not running:
                break
            done, _ = wait(list(running), timeout=0.05, return_when=FIRST_COMPLETED)
            for fut in done:
                running.pop(fut)
                fut.result()
    with state.lock:
        failed = sum(1 for j in tj.jobs if j.status == "Failed")
        succeeded = sum(1 for j in tj.jobs if j.status == "Completed")
        if tj.stop_requested or state.halted.is_set():
            tj.status = "Stopped"
        elif succeeded == 0:
            tj.status = "Failed"
            tj.failure_reason = (
                f"No training job succeeded after {failed} attempts. Please take a look at the "
                "training job failures to get more details."
            )
        else:
            tj.status = "Completed"
        tj.ended = tj.modified = now()


def _ended(job: TrainingJob) -> bool:
    return job.status not in ("InProgress", "Stopping")


def _proposable(tj: TuningJob, parallel: int) -> bool:
    """The next job (n) may be proposed once jobs 1..n-parallel have ended (caller holds the lock)."""
    return all(_ended(j) for j in tj.jobs[: len(tj.jobs) + 1 - parallel])


def _new_training_job(state: State, tj: TuningJob, parallel: int) -> TrainingJob:
    """Propose hyperparameters from jobs 1..n-parallel and register job n (caller holds the lock)."""
    known = max(0, len(tj.jobs) + 1 - parallel)
    history = list(tj.warm_history) + [(j.tuned, j.objective) for j in tj.jobs[:known]]
    pending = [j.tuned for j in tj.jobs[known:]]
    tuned = tj.searcher.propose(history, pending)
    index = len(tj.jobs) + 1
    while True:
        name = f"{tj.name}-{index:03d}-{secrets.token_hex(4)}"
        if name.lower() not in state.training_jobs:
            break
    hps = dict(tj.static)
    hps.update(tuned)
    hps["_tuning_objective_metric"] = tj.objective_metric
    job = TrainingJob(name, state.arn("training-job", name), tj, index, dict(tuned), hps, now())
    tj.jobs.append(job)
    tj.modified = job.created
    state.add(state.training_jobs, job, tj.tags)
    return job


def _run_training(state: State, tj: TuningJob, job: TrainingJob) -> None:
    def should_stop() -> bool:
        return job.stop.is_set() or state.halted.is_set()

    def transition(status: str, message: str) -> None:
        with state.lock:
            job.transition(status, message)

    try:
        if should_stop():
            raise kmeans.Stopped()
        with state.lock:
            job.started = now()
        transition("Downloading", "Downloading input data")
        if tj.fault_training:
            raise JobFailure(tj.fault_training)
        try:
            params = kmeans.KMeansParams.from_hyperparameters(job.hyperparameters)
        except ValueError as exc:
            raise kmeans.DataError(f"Invalid hyperparameters: {exc}") from None
        data = _channel_data(state, tj, params)
        if should_stop():
            raise kmeans.Stopped()
        transition("Training", "Training image download completed. Training in progress.")
        rng = np.random.default_rng(training_seed(tj.random_seed, job.hyperparameters))
        centroids = kmeans.train(data["train"], params, rng, should_stop)
        metrics = {}
        if "test" in data:
            scores = kmeans.evaluate(data["test"], centroids)
            metrics = {"test:msd": scores["msd"], "test:ssd": scores["ssd"]}
        transition("Uploading", "Uploading generated training model")
        artifact = _upload_model(state.client("s3"), tj, job, centroids)
        remaining = job.created + state.timing.training_job_min_seconds - now()
        if remaining > 0:
            job.stop.wait(remaining)
        if should_stop():
            raise kmeans.Stopped()
        with state.lock:
            job.metrics, job.metrics_time = metrics, now()
            job.artifact = artifact
            job.objective = metrics.get(tj.objective_metric)
            job.finish("Completed", "Completed", "Training job completed")
    except kmeans.Stopped:
        with state.lock:
            job.finish("Stopped", "Stopped", "Training job stopped")
    except kmeans.DataError as exc:
        with state.lock:
            job.failure_reason = clip_reason(f"ClientError: {exc}")
            job.finish("Failed", "Failed", "Training job failed")
    except JobFailure as exc:
        with state.lock:
            job.failure_reason = clip_reason(str(exc))
            job.finish("Failed", "Failed", "Training job failed")
    except Exception as exc:  # unexpected: as SageMaker reports its own errors
        log.exception("training job %s crashed", job.name)
        with state.lock:
            job.failure_reason = clip_reason(
                f"InternalServerError: We encountered an internal error. Please try again. ({exc!r})"
            )
            job.finish("Failed", "Failed", "Training job failed")


def training_seed(tuning_seed: int, hyperparameters: dict[str, str]) -> list[int]:
    """The entropy a training job's random generator starts from: its tuning job's seed and its hyperparameters
    (never its name, which holds a random suffix)."""
    text = json.dumps(hyperparameters, sort_keys=True).encode()
    return [int(tuning_seed), zlib.crc32(text)]


def _channel_data(state: State, tj: TuningJob, params: kmeans.KMeansParams) -> dict[str, np.ndarray]:
    """Every channel parsed once per tuning job (all its training jobs read the same data)."""
    with tj.data_lock:
        if tj.data is None:
            try:
                tj.data = load_channels(state.client("s3"), tj.definition, params)
            except kmeans.DataError as exc:
                tj.data = exc
        if isinstance(tj.data, Exception):
            raise tj.data
        data = tj.data
    if len(data["train"]) < params.k:
        raise kmeans.DataError(
            f"The train channel has {len(data['train'])} records, fewer than k={params.k}: "
            "k-means needs at least k records."
        )
    return data


def load_channels(s3, definition: dict, params: kmeans.KMeansParams) -> dict[str, np.ndarray]:
    """Every channel of a TrainingJobDefinition read from S3 and parsed as the K-Means container does."""
    out = {}
    for ch in definition.get("InputDataConfig") or []:
        cname = ch["ChannelName"]
        uri = ch["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = parse_s3_uri(uri, "S3Uri")
        ctype_raw = ch.get("ContentType") or "application/x-recordio-protobuf"
        ctype, cparams = kmeans.parse_content_type(ctype_raw)
        gzipped = ch.get("CompressionType") == "Gzip"
        objects = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/"):
                        objects.append(obj["Key"])
        except botocore.exceptions.ClientError as exc:
            raise kmeans.DataError(f"Data download failed: could not list {uri} for channel '{cname}': {exc}") from None
        if not objects:
            raise kmeans.DataError(f"Data download failed: no objects found under {uri} for channel '{cname}'.")
        parts = []
        for key in sorted(objects):
            source = f"s3://{bucket}/{key}"
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except botocore.exceptions.ClientError as exc:
                raise kmeans.DataError(f"Data download failed: {source}: {exc}") from None
            if gzipped:
                try:
                    body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
                except zlib.error as exc:
                    raise kmeans.DataError(
                        f"Unable to read data channel '{cname}': {source} is not gzip "
                        f"although CompressionType is Gzip ({exc})."
                    ) from None
            try:
                if ctype == "text/csv":
                    label_size = int(cparams.get("label_size", "1"))
                    arr = kmeans.parse_csv(body, label_size=label_size, feature_dim=params.feature_dim, source=source)
                else:
                    arr = kmeans.parse_recordio_protobuf(body, feature_dim=params.feature_dim, source=source)
            except kmeans.DataError as exc:
                raise kmeans.DataError(
                    f"Unable to read data channel '{cname}'. Requested content-type is "
                    f"'{ctype_raw}'. Please verify the data matches the requested content-type. "
                    f"(caused by: {exc})"
                ) from None
            parts.append(arr)
        data = np.concatenate(parts) if parts else np.zeros((0, params.feature_dim))
        if len(data) == 0:
            raise kmeans.DataError(f"No records found in channel '{cname}' ({uri}): the objects are empty.")
        out[cname] = data
    return out


def _upload_model(s3, tj: TuningJob, job: TrainingJob, centroids: np.ndarray) -> str:
    out = tj.definition["OutputDataConfig"]
    bucket, prefix = parse_s3_uri(out["S3OutputPath"], "S3OutputPath")
    prefix = prefix.strip("/")
    key = f"{prefix}/{job.name}/output/model.tar.gz" if prefix else f"{job.name}/output/model.tar.gz"
    extra = {"ServerSideEncryption": "aws:kms"}
    if out.get("KmsKeyId"):
        extra["SSEKMSKeyId"] = out["KmsKeyId"]
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=write_model_tar_gz(centroids), **extra)
    except botocore.exceptions.ClientError as exc:
        raise JobFailure(f"ClientError: Failed to upload the model artifact to s3://{bucket}/{key}: {exc}") from None
    return f"s3://{bucket}/{key}"
