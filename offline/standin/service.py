"""An in-process stand-in for Amazon SageMaker and SageMaker Runtime (built-in K-Means only).

It answers the requests botocore is about to send (see ``hook.py``) with the bytes SageMaker would
send back: JSON bodies with epoch-second timestamps, HTTP 400 + ``__type`` errors with SageMaker's
codes and messages, ``ThrottlingException`` that botocore's retry modes retry. Tuning jobs run real
K-Means training jobs in background threads (data read from S3, artifacts written to S3 with
SSE-KMS), endpoints load the artifacts and serve InvokeEndpoint with the trained centroids.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import logging
import math
import re
import secrets
import threading
import time
import traceback
import zlib
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import boto3
import botocore.config
import botocore.exceptions
import numpy as np

from . import hook, kmeans
from .ndarray import read_model_tar_gz, write_model_tar_gz

log = logging.getLogger(__name__)

MAX_INVOKE_BODY = 6 * 1024 * 1024  # 6,291,456 bytes
MAX_FAILURE_REASON = 1024
MAX_TRAINING_JOBS_PER_TUNING_JOB = 500
MAX_PARALLEL_TRAINING_JOBS = 100
NO_SUCCESS_ATTEMPTS = 5  # SageMaker gives up a tuning job after this many failures and no success

# The registry account of the built-in K-Means image per region (SageMaker Python SDK
# image_uri_config/kmeans.json). Regions not listed accept any 12-digit account.
KMEANS_REGISTRIES = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ca-central-1": "469771592824",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-north-1": "669576153137",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "eu-south-1": "257386234256",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-west-1": "226302683700",
    "us-iso-east-1": "490574956308",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}
_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]{64})?$"
)
# Instance families whose storage is local NVMe: SageMaker refuses a KMS key for their volumes.
_NVME_FAMILIES = {
    "m5d", "c5d", "r5d", "m5ad", "r5ad", "m6id", "c6id", "r6id", "g4dn", "g4ad", "g5", "g6",
    "g6e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "trn1", "trn1n", "inf2", "i3", "i3en",
}

# name patterns and lengths from the botocore service model
_NAME_RULES = {
    "HyperParameterTuningJobName": (32, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}"),
    "TrainingJobName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "ModelName": (63, r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"),
    "EndpointConfigName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "EndpointName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "VariantName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
}
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
_KMS_RE = re.compile(r"[a-zA-Z0-9:/_-]*")
_S3_URI_RE = re.compile(r"^s3://([^/]+)/?(.*)$")
_TAG_RE = re.compile(r"^[\w\s_.:/=+\-@]*$", re.UNICODE)

_SHARED_SESSION: boto3.session.Session | None = None
_SHARED_SESSION_LOCK = threading.Lock()

IN_PROGRESS_ENDPOINT = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


@dataclass
class Faults:
    """Failures to inject; all off by default.

    The tuning/training and endpoint faults are read when the Create/Update call arrives, so changing
    them affects resources created afterwards. ``throttle_creates`` counts afresh whenever its value
    or the ``faults`` object changes (or after ``reset_throttling()``).
    """

    tuning_job_fails: str | None = None
    training_jobs_fail: str | None = None
    endpoint_creation_fails: str | None = None
    endpoint_update_fails: str | None = None
    throttle_creates: int = 0
    # The first N calls of each Create* refused with ResourceLimitExceeded (an account quota reached);
    # `limit_only` narrows that to one operation, e.g. "CreateEndpoint".
    limit_creates: int = 0
    limit_only: str | None = None
    # InvokeEndpoint answers with every distance_to_cluster doubled (read per request), as a container serving
    # something other than its artifact would: what the pipeline's endpoint check must catch.
    endpoint_answers_wrong: bool = False


@dataclass
class Timing:
    """How long the simulated asynchronous work takes (seconds)."""

    endpoint_seconds: float = 0.5  # Creating / Updating before InService or Failed
    training_job_min_seconds: float = 0.0  # a training job lasts at least this long
    endpoint_delete_seconds: float = 0.05  # Deleting before the endpoint is gone


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, **fields: Any):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields


def _validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def _now() -> float:
    return time.time()


def _clip_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_FAILURE_REASON else reason[: MAX_FAILURE_REASON - 3] + "..."


def _camel(field: str) -> str:
    return ".".join(part[:1].lower() + part[1:] for part in field.split("."))


def _check_name(value: Any, field: str, rule: str | None = None) -> str:
    maxlen, pattern = _NAME_RULES[rule or field]
    where = _camel(field)
    if not isinstance(value, str) or not value:
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    if len(value) > maxlen:
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
            f"constraint: Member must have length less than or equal to {maxlen}"
        )
    if not re.fullmatch(pattern, value):
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {pattern}"
        )
    return value


def _check_role(value: Any, field: str) -> None:
    if not isinstance(value, str) or not (20 <= len(value) <= 2048) or not _ROLE_ARN_RE.fullmatch(
        value
    ):
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{_camel(field)}' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
        )


def _parse_s3_uri(uri: Any, field: str) -> tuple[str, str]:
    m = _S3_URI_RE.match(uri) if isinstance(uri, str) else None
    if not m or not m.group(1):
        raise _validation(f"{field} must be an S3 URI of the form s3://bucket/prefix, got '{uri}'.")
    return m.group(1), m.group(2)


def _instance_family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) >= 3 else ""


def _check_tags(tags: Any) -> list[dict[str, str]]:
    if tags is None:
        return []
    if len(tags) > 50:
        raise _validation(
            f"1 validation error detected: Value at 'tags' failed to satisfy constraint: Member "
            f"must have length less than or equal to 50 (got {len(tags)} tags)"
        )
    seen = set()
    out = []
    for tag in tags:
        key, value = tag.get("Key"), tag.get("Value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _TAG_RE.match(key):
            raise _validation(f"Tag key '{key}' is invalid: 1-128 characters of [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@].")
        if not isinstance(value, str) or len(value) > 256 or not _TAG_RE.match(value):
            raise _validation(f"Tag value '{value}' for key '{key}' is invalid: 0-256 characters.")
        if key.lower().startswith("aws:"):
            raise _validation(f"Tag key '{key}' is invalid: the aws: prefix is reserved for AWS use.")
        if key in seen:
            raise _validation(f"Duplicate tag key '{key}' in the request.")
        seen.add(key)
        out.append({"Key": key, "Value": value})
    return out


def _int_str(value: Any, what: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"\s*[+-]?\d+\s*", value):
        raise _validation(f"{what} '{value}' is not an integer.")
    return int(value)


def _page(items: list, params: dict, default_max: int = 10) -> tuple[list, str | None]:
    max_results = params.get("MaxResults", default_max)
    if not isinstance(max_results, int) or not 1 <= max_results <= 100:
        raise _validation(
            f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to satisfy "
            "constraint: Member must have value between 1 and 100"
        )
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)[1])
            if start < 0:
                raise ValueError
        except Exception:
            raise _validation("Invalid pagination token") from None
    page = items[start : start + max_results]
    nxt = None
    if start + max_results < len(items):
        nxt = base64.urlsafe_b64encode(f"standin:{start + max_results}".encode()).decode()
    return page, nxt


def _prune(d: Any) -> Any:
    """Drop None values recursively (SageMaker omits absent members)."""
    if isinstance(d, dict):
        return {k: _prune(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_prune(v) for v in d]
    return d


# ----------------------------------------------------------------------------------------------
# Hyperparameter search
# ----------------------------------------------------------------------------------------------


class _Range:
    """One searched hyperparameter; numeric values map to u in [0, 1] in their scaled space."""

    def __init__(self, name: str, kind: str, lo=None, hi=None, scaling="Auto", values=None):
        self.name, self.kind, self.lo, self.hi = name, kind, lo, hi
        self.scaling = "Linear" if scaling in (None, "Auto") else scaling
        self.values = list(values or [])

    @property
    def width(self) -> int:  # encoded dimensions
        return len(self.values) if self.kind == "Categorical" else 1

    def _t(self, v: float) -> float:
        if self.scaling == "Logarithmic":
            return math.log(v)
        if self.scaling == "ReverseLogarithmic":
            return -math.log(1.0 - v)
        return float(v)

    def _inv(self, t: float) -> float:
        if self.scaling == "Logarithmic":
            return math.exp(t)
        if self.scaling == "ReverseLogarithmic":
            return 1.0 - math.exp(-t)
        return t

    def decode(self, u: float | int) -> str:
        if self.kind == "Categorical":
            return self.values[int(u)]
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "Integer":
            if self.scaling == "Linear":
                v = self.lo + int(math.floor(u * (self.hi - self.lo + 1)))
            else:
                a, b = self._t(self.lo), self._t(self.hi)
                v = int(round(self._inv(a + u * (b - a))))
            return str(min(max(v, self.lo), self.hi))
        a, b = self._t(self.lo), self._t(self.hi)
        v = min(max(self._inv(a + u * (b - a)), self.lo), self.hi)
        return repr(float(v))

    def encode(self, value: str) -> np.ndarray:
        if self.kind == "Categorical":
            out = np.zeros(len(self.values))
            out[self.values.index(value)] = 1.0
            return out
        v = float(value)
        if self.kind == "Integer" and self.scaling == "Linear":
            return np.array([(v - self.lo + 0.5) / (self.hi - self.lo + 1)])
        a, b = self._t(self.lo), self._t(self.hi)
        return np.array([0.5 if b == a else (self._t(v) - a) / (b - a)])

    def contains(self, value: str) -> bool:
        if self.kind == "Categorical":
            return value in self.values
        try:
            v = float(value)
        except ValueError:
            return False
        if self.kind == "Integer" and v != int(v):
            return False
        return self.lo <= v <= self.hi

    def random(self, rng: np.random.Generator):
        return int(rng.integers(len(self.values))) if self.kind == "Categorical" else rng.random()


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)).astype(np.float64))


class _Searcher:
    """Proposes the hyperparameters of the next training job of a tuning job.

    Random: uniform in the (scaled) ranges. Bayesian: a few random points covering every categorical
    value, then the candidate with the best expected improvement under a small Gaussian-process
    surrogate, candidates drawn both at random and near the best points so far. Grid: every combination of the categorical values.
    Proposals avoid repeating a configuration already tried or running while others remain.
    """

    def __init__(self, ranges: list[_Range], strategy: str, max_jobs: int, rng: np.random.Generator):
        self.ranges, self.strategy, self.max_jobs, self.rng = ranges, strategy, max_jobs, rng
        self.n_random = max(2, min(5, max_jobs // 3))
        self._grid = (
            list(itertools.product(*[r.values for r in ranges])) if strategy == "Grid" else []
        )
        self._grid_pos = 0

    @staticmethod
    def key(values: dict[str, str]) -> tuple:
        return tuple(sorted(values.items()))

    def _random_config(self) -> dict[str, str]:
        return {r.name: r.decode(r.random(self.rng)) for r in self.ranges}

    def _encode(self, values: dict[str, str]) -> np.ndarray:
        return np.concatenate([r.encode(values[r.name]) for r in self.ranges])

    def propose(
        self, history: list[tuple[dict[str, str], float | None]], pending: list[dict[str, str]]
    ) -> dict[str, str]:
        if self.strategy == "Grid":
            combo = self._grid[self._grid_pos % len(self._grid)]
            self._grid_pos += 1
            return {r.name: v for r, v in zip(self.ranges, combo)}
        seen = {self.key(v) for v, _ in history} | {self.key(v) for v in pending}
        scored = [(v, y) for v, y in history if y is not None and math.isfinite(y)]
        if self.strategy == "Bayesian" and len(scored) >= max(2, self.n_random) and len(
            history
        ) + len(pending) >= self.n_random:
            proposal = self._bayesian(scored, seen)
            if proposal is not None:
                return proposal
        tried = [v for v, _ in history] + list(pending)
        for _ in range(200):
            cand = self._space_filling_config(tried) if self.strategy == "Bayesian" else self._random_config()
            if self.key(cand) not in seen:
                return cand
        return self._random_config()  # the space is exhausted: repeat a configuration

    def _space_filling_config(self, tried: list[dict[str, str]]) -> dict[str, str]:
        """A random configuration whose categorical values are the ones tried least so far.

        An initial design that covers every categorical value before the surrogate takes over, as
        space-filling designs do: otherwise two unlucky first draws of the same category leave the
        search exploiting that category alone.
        """
        config = self._random_config()
        for r in self.ranges:
            if r.kind == "Categorical":
                uses = [sum(1 for t in tried if t.get(r.name) == value) for value in r.values]
                least = [value for value, n in zip(r.values, uses) if n == min(uses)]
                config[r.name] = least[int(self.rng.integers(len(least)))]
        return config

    def _bayesian(self, scored, seen) -> dict[str, str] | None:
        X = np.array([self._encode(v) for v, _ in scored])
        y = np.array([y for _, y in scored], dtype=np.float64)
        if np.all(y > 0):
            y = np.log(y)
        y = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
        order = np.argsort(y)
        cands: list[dict[str, str]] = [self._random_config() for _ in range(256)]
        for i in order[:3]:
            base = scored[int(i)][0]
            for _ in range(96):
                c = {}
                for r in self.ranges:
                    if r.kind == "Categorical":
                        c[r.name] = (
                            r.decode(r.random(self.rng)) if self.rng.random() < 0.25 else base[r.name]
                        )
                    else:
                        u = float(r.encode(base[r.name])[0]) + self.rng.normal(0.0, 0.12)
                        c[r.name] = r.decode(min(max(u, 0.0), 1.0))
                cands.append(c)
        unique: dict[tuple, dict[str, str]] = {}
        for c in cands:
            k = self.key(c)
            if k not in seen:
                unique.setdefault(k, c)
        if not unique:
            return None
        pool = list(unique.values())
        Xc = np.array([self._encode(c) for c in pool])
        ls, noise = 0.25, 1e-4

        def kern(a, b):
            d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
            return np.exp(-0.5 * d2 / ls**2)

        K = kern(X, X) + noise * np.eye(len(X))
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            L = np.linalg.cholesky(K + 1e-2 * np.eye(len(X)))
        alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
        ks = kern(Xc, X)
        mu = ks @ alpha
        v = np.linalg.solve(L, ks.T)
        sigma = np.sqrt(np.clip(1.0 - (v * v).sum(0), 1e-12, None))
        imp = y.min() - mu - 0.01
        z = imp / sigma
        ei = imp * _norm_cdf(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return pool[int(np.argmax(ei))]


# ----------------------------------------------------------------------------------------------
# Resources
# ----------------------------------------------------------------------------------------------


class _JobFailure(Exception):
    """A training job fails with exactly this FailureReason."""


class _TrainingJob:
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


class _TuningJob:
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
        self.jobs: list[_TrainingJob] = []
        self.stop_requested = False
        self.tags = tags
        self.fault_tuning: str | None = None
        self.fault_training: str | None = None
        self.searcher: _Searcher | None = None
        self.ranges: list[_Range] = []
        self.static: dict[str, str] = {}
        self.warm_history: list[tuple[dict[str, str], float]] = []
        self.data: Any = None
        self.data_lock = threading.Lock()


class _Model:
    def __init__(self, name, arn, request, now):
        self.name, self.arn, self.request, self.created = name, arn, request, now


class _EndpointConfig:
    def __init__(self, name, arn, request, now):
        self.name, self.arn, self.request, self.created = name, arn, request, now


class _Variant:
    def __init__(self, spec: dict, image: str, centroids: np.ndarray):
        self.spec, self.image, self.centroids = spec, image, centroids
        self.name = spec["VariantName"]
        self.weight = float(spec.get("InitialVariantWeight", 1.0))


class _Endpoint:
    def __init__(self, name, arn, config_name, now, tags):
        self.name, self.arn = name, arn
        self.config_name = config_name  # the config serving (or being created)
        self.pending_config: str | None = None
        self.pending_since: float | None = None
        self.status = "Creating"
        self.failure_reason: str | None = None
        self.created = self.modified = now
        self.variants: list[_Variant] | None = None
        self.variant_specs: list[dict] = []
        self.deployment_config: dict | None = None
        self.generation = 0
        self.tags = tags


# ----------------------------------------------------------------------------------------------
# The stand-in
# ----------------------------------------------------------------------------------------------

_SAGEMAKER_OPS = {
    "CreateHyperParameterTuningJob": "_create_hyper_parameter_tuning_job",
    "DescribeHyperParameterTuningJob": "_describe_hyper_parameter_tuning_job",
    "ListTrainingJobsForHyperParameterTuningJob": "_list_training_jobs_for_tuning_job",
    "StopHyperParameterTuningJob": "_stop_hyper_parameter_tuning_job",
    "DescribeTrainingJob": "_describe_training_job",
    "CreateModel": "_create_model",
    "DescribeModel": "_describe_model",
    "DeleteModel": "_delete_model",
    "ListModels": "_list_models",
    "CreateEndpointConfig": "_create_endpoint_config",
    "DescribeEndpointConfig": "_describe_endpoint_config",
    "DeleteEndpointConfig": "_delete_endpoint_config",
    "ListEndpointConfigs": "_list_endpoint_configs",
    "CreateEndpoint": "_create_endpoint",
    "DescribeEndpoint": "_describe_endpoint",
    "UpdateEndpoint": "_update_endpoint",
    "DeleteEndpoint": "_delete_endpoint",
    "ListEndpoints": "_list_endpoints",
    "AddTags": "_add_tags",
    "ListTags": "_list_tags",
}


class SageMakerStandIn:
    """Answers every ``sagemaker`` and ``sagemaker-runtime`` request once ``install()``-ed."""

    def __init__(
        self,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        faults: Faults | None = None,
        timing: Timing | None = None,
        *,
        verify_kms_keys: bool = True,
        max_workers_per_tuning_job: int = 2,
    ):
        self.region = region
        self.account_id = account_id
        self.faults = faults if faults is not None else Faults()
        self.timing = timing if timing is not None else Timing()
        self.verify_kms_keys = verify_kms_keys
        self.max_workers_per_tuning_job = max(1, int(max_workers_per_tuning_job))
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self._tuning_jobs: dict[str, _TuningJob] = {}
        self._training_jobs: dict[str, _TrainingJob] = {}
        self._models: dict[str, _Model] = {}
        self._endpoint_configs: dict[str, _EndpointConfig] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._tags: dict[str, list[dict[str, str]]] = {}  # arn -> tags, for every live resource
        self._throttle_key: tuple | None = None
        self._throttle_counts: dict[str, int] = {}
        self._invoke_rng = np.random.default_rng()

    # -- lifecycle ------------------------------------------------------------------------------

    def install(self) -> "SageMakerStandIn":
        hook.install(self)
        self._halt.clear()
        return self

    def uninstall(self) -> None:
        hook.uninstall(self)
        self._halt.set()
        with self._lock:
            for job in self._training_jobs.values():
                job.stop.set()
            threads = list(self._threads)
        deadline = time.monotonic() + 30
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def installed(self) -> bool:
        return hook.active() is self

    def __enter__(self) -> "SageMakerStandIn":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def reset_throttling(self) -> None:
        """Start counting the first ``faults.throttle_creates`` calls of each operation again."""
        with self._lock:
            self._throttle_key = None
            self._throttle_counts.clear()

    def _spawn(self, target: Callable, *args, name: str = "standin") -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:  # started under the lock: uninstall() never joins a thread that has not started
            self._threads = [x for x in self._threads if x.is_alive()]
            t.start()
            self._threads.append(t)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless uninstalled meanwhile; True when the sleep was interrupted."""
        return self._halt.wait(max(0.0, seconds)) if seconds > 0 else self._halt.is_set()

    # -- AWS clients used by the stand-in itself (answered by moto in tests) ---------------------

    def _client(self, service: str):
        cache = getattr(self._local, "clients", None)
        if cache is None:
            cache = self._local.clients = {}
        if service not in cache:
            # One session for all the stand-in's own clients (service models load once); sessions
            # are not thread-safe, so clients are made under a lock and then used by one thread.
            global _SHARED_SESSION
            with _SHARED_SESSION_LOCK:
                if _SHARED_SESSION is None:
                    _SHARED_SESSION = boto3.session.Session()
                cache[service] = _SHARED_SESSION.client(
                    service,
                    region_name=self.region,
                    config=botocore.config.Config(retries={"mode": "standard"}),
                )
        return cache[service]

    # -- ARNs -----------------------------------------------------------------------------------

    def _arn(self, kind: str, name: str) -> str:
        partition = "aws-cn" if self.region.startswith("cn-") else (
            "aws-us-gov" if self.region.startswith("us-gov-") else "aws"
        )
        return f"arn:{partition}:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    # -- HTTP -----------------------------------------------------------------------------------

    def handle_http(self, service: str, operation: str, request) -> Any:
        """Build the HTTP response SageMaker would send for a prepared botocore request."""
        url = request.url
        try:
            if service == "sagemaker-runtime":
                return self._runtime_http(operation, request)
            body = _read_body(request.body)
            params = json.loads(body.decode("utf-8") or "{}") if body else {}
            result = self.call(operation, params)
            payload = json.dumps(_prune(result)).encode("utf-8")
            return hook.make_response(
                url, 200, {"Content-Type": "application/x-amz-json-1.1"}, payload
            )
        except ApiError as err:
            return self._error_response(url, service, err)
        except Exception as exc:  # a bug in the stand-in: say so loudly
            log.exception("SageMaker stand-in failed on %s.%s", service, operation)
            err = ApiError(
                "InternalFailure",
                f"The SageMaker stand-in failed on {operation}: {exc!r}\n{traceback.format_exc()}",
                status=500,
            )
            return self._error_response(url, service, err)

    def _error_response(self, url: str, service: str, err: ApiError):
        if service == "sagemaker":
            body = {"__type": err.code, "message": err.message}
            ctype = "application/x-amz-json-1.1"
        else:
            body = {"message": err.message} if not err.fields else {"Message": err.message}
            body.update(err.fields)
            ctype = "application/json"
        return hook.make_response(
            url,
            err.status,
            {"Content-Type": ctype, "x-amzn-ErrorType": err.code},
            json.dumps(body).encode("utf-8"),
        )

    def call(self, operation: str, params: dict) -> dict:
        """Run one SageMaker API operation on already-deserialised parameters."""
        method = _SAGEMAKER_OPS.get(operation)
        if method is None:
            raise ApiError(
                "UnknownOperationException",
                f"The SageMaker stand-in does not implement {operation}. It implements: "
                + ", ".join(sorted(_SAGEMAKER_OPS)),
            )
        self._maybe_throttle(operation)
        return getattr(self, method)(params)

    def _maybe_throttle(self, operation: str) -> None:
        if not (operation.startswith("Create") or operation == "UpdateEndpoint"):
            return
        with self._lock:
            throttle = int(self.faults.throttle_creates or 0)
            limit = int(self.faults.limit_creates or 0) if operation.startswith("Create") else 0
            if self.faults.limit_only not in {None, operation}:
                limit = 0
            key = (id(self.faults), throttle, limit)
            if key != self._throttle_key:
                self._throttle_key = key
                self._throttle_counts = {}
            for fault, n, code, message in (
                ("throttle", throttle, "ThrottlingException", "Rate exceeded"),
                ("limit", limit, "ResourceLimitExceeded",
                 f"The account-level service limit for {operation} has been reached. Please contact AWS support "
                 "to request an increase for this limit."),
            ):
                done = self._throttle_counts.get((fault, operation), 0)
                if done < n:
                    self._throttle_counts[(fault, operation)] = done + 1
                    raise ApiError(code, message)

    # -- validation helpers ---------------------------------------------------------------------

    def _check_image(self, image: Any, field: str) -> None:
        if not isinstance(image, str) or not image:
            raise _validation(f"{field} is required: the built-in K-Means image, kmeans:1.")
        m = _IMAGE_RE.match(image)
        expected_account = KMEANS_REGISTRIES.get(self.region)
        expected = (
            f"{expected_account or '<account>'}.dkr.ecr.{self.region}.amazonaws.com/kmeans:1"
        )
        if not m or m.group("repo") != "kmeans":
            raise _validation(
                f"{field} '{image}' is not the built-in K-Means algorithm. This SageMaker stand-in "
                f"runs only SageMaker's K-Means ({expected}); other algorithms and custom images are "
                "not supported."
            )
        if m.group("tag") != "1":
            raise _validation(
                f"{field} '{image}': use the K-Means image with tag '1' ({expected}), not "
                f"'{m.group('tag') or 'no tag'}'."
            )
        if m.group("region") != self.region:
            raise _validation(
                f"{field} '{image}' is in region {m.group('region')}, but SageMaker runs in "
                f"{self.region}: use {expected}."
            )
        if expected_account and m.group("account") != expected_account:
            raise _validation(
                f"{field} '{image}': the K-Means image of {self.region} is in account "
                f"{expected_account} ({expected})."
            )

    def _check_kms(self, key_id: Any, field: str) -> None:
        if key_id in (None, ""):
            return
        if not isinstance(key_id, str) or len(key_id) > 2048 or not _KMS_RE.fullmatch(key_id):
            raise _validation(
                f"1 validation error detected: Value '{key_id}' at '{_camel(field)}' failed to "
                r"satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]*$"
            )
        if not self.verify_kms_keys:
            return
        try:
            meta = self._client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NotFoundException", "InvalidArnException", "AccessDeniedException"):
                raise _validation(
                    f"KMS key '{key_id}' given as {field} does not exist or is not accessible."
                ) from None
            return  # cannot verify: let it pass
        except Exception:
            return
        if meta.get("KeyState") != "Enabled":
            raise _validation(
                f"KMS key '{key_id}' given as {field} is {meta.get('KeyState')}, not Enabled."
            )

    @staticmethod
    def _check_nvme_kms(instance_type: Any, key_id: Any, field: str) -> None:
        if key_id and isinstance(instance_type, str) and _instance_family(instance_type) in _NVME_FAMILIES:
            raise _validation(
                f"{field} is not supported for instance type {instance_type}: its storage is local "
                "NVMe SSD, which the instance encrypts itself. Use an EBS-backed instance type "
                "(for example ml.m5 or ml.c5) or omit the key."
            )

    def _tag_arn(self, arn: str, tags: list[dict[str, str]]) -> None:
        self._tags[arn] = list(tags)

    # ==========================================================================================
    # Hyperparameter tuning jobs
    # ==========================================================================================

    def _create_hyper_parameter_tuning_job(self, p: dict) -> dict:
        name = _check_name(p.get("HyperParameterTuningJobName"), "HyperParameterTuningJobName")
        tags = _check_tags(p.get("Tags"))
        if p.get("TrainingJobDefinitions"):
            raise _validation(
                "TrainingJobDefinitions (several algorithms in one tuning job) is not supported by "
                "the SageMaker stand-in: use TrainingJobDefinition."
            )
        if p.get("Autotune"):
            raise _validation("Autotune is not supported by the SageMaker stand-in.")
        config = p.get("HyperParameterTuningJobConfig") or {}
        definition = p.get("TrainingJobDefinition")
        if not definition:
            raise _validation("TrainingJobDefinition is required.")
        strategy = config.get("Strategy")
        if strategy not in ("Bayesian", "Random", "Grid", "Hyperband"):
            raise _validation(
                f"1 validation error detected: Value '{strategy}' at "
                "'hyperParameterTuningJobConfig.strategy' failed to satisfy constraint: Member must "
                "satisfy enum value set: [Bayesian, Random, Hyperband, Grid]"
            )
        if strategy == "Hyperband":
            raise _validation(
                "The Hyperband strategy needs an algorithm that reports intermediate objective "
                "metrics; the built-in K-Means does not. Use Bayesian, Random or Grid."
            )
        objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
        if not objective:
            raise _validation("HyperParameterTuningJobObjective is required.")
        if objective.get("MetricName") not in kmeans.OBJECTIVE_METRICS:
            raise _validation(
                f"The objective metric for the hyperparameter tuning job, [{objective.get('MetricName')}], "
                "isn't valid for the [kmeans] algorithm. Choose a valid objective metric: "
                + ", ".join(kmeans.OBJECTIVE_METRICS)
                + "."
            )
        if objective.get("Type") != "Minimize":
            raise _validation(
                f"The objective metric type [{objective.get('Type')}] isn't valid for the "
                f"[{objective['MetricName']}] metric of the [kmeans] algorithm: it must be Minimize."
            )
        ranges = self._check_ranges(
            config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {}, strategy
        )
        limits = config.get("ResourceLimits") or {}
        max_jobs = limits.get("MaxNumberOfTrainingJobs")
        max_parallel = limits.get("MaxParallelTrainingJobs")
        if not isinstance(max_parallel, int) or max_parallel < 1:
            raise _validation("ResourceLimits.MaxParallelTrainingJobs must be an integer >= 1.")
        if strategy == "Grid":
            combos = math.prod(len(r.values) for r in ranges)
            if max_jobs is not None and max_jobs > combos:
                raise _validation(
                    f"MaxNumberOfTrainingJobs ({max_jobs}) exceeds the {combos} combinations of the "
                    "Grid search."
                )
            max_jobs = max_jobs or combos
        if not isinstance(max_jobs, int) or max_jobs < 1:
            raise _validation(
                "ResourceLimits.MaxNumberOfTrainingJobs is required for the "
                f"{strategy} strategy and must be an integer >= 1."
            )
        if max_jobs > MAX_TRAINING_JOBS_PER_TUNING_JOB:
            raise ApiError(
                "ResourceLimitExceeded",
                f"The value of MaxNumberOfTrainingJobs ({max_jobs}) exceeds the account-level "
                f"service limit 'Number of training jobs per tuning job' of "
                f"{MAX_TRAINING_JOBS_PER_TUNING_JOB}.",
            )
        if max_parallel > MAX_PARALLEL_TRAINING_JOBS:
            raise ApiError(
                "ResourceLimitExceeded",
                f"The value of MaxParallelTrainingJobs ({max_parallel}) exceeds the account-level "
                f"service limit 'Number of concurrent training jobs per tuning job' of "
                f"{MAX_PARALLEL_TRAINING_JOBS}.",
            )
        if strategy != "Grid":
            combos = math.prod(
                (r.hi - r.lo + 1) if r.kind == "Integer" else len(r.values) for r in ranges
            )
            if combos < max_jobs:
                raise _validation(
                    "You don't have enough combinations of hyperparameter ranges. The total number "
                    f"of hyperparameter combinations for the provided ranges [{float(combos)}] must "
                    f"be equal or greater than the value of MaxNumberOfJobs, [{max_jobs}]. Provide "
                    "additional ranges."
                )
        static = self._check_training_definition(definition, ranges, objective["MetricName"])
        parents = self._check_warm_start(p.get("WarmStartConfig"), ranges)

        request = copy.deepcopy({k: v for k, v in p.items() if k != "Tags"})
        request["HyperParameterTuningJobConfig"].setdefault("HyperParameterTuningJobObjective", objective)
        request["HyperParameterTuningJobConfig"]["ResourceLimits"].setdefault(
            "MaxNumberOfTrainingJobs", max_jobs
        )
        request["HyperParameterTuningJobConfig"].setdefault("TrainingJobEarlyStoppingType", "Off")
        arn = self._arn("hyper-parameter-tuning-job", name)
        seed = config.get("RandomSeed")
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(64))
        with self._lock:
            if name.lower() in self._tuning_jobs:
                raise ApiError("ResourceInUse", f"Hyperparameter tuning job {name} already exists.")
            tj = _TuningJob(name, arn, request, _now(), tags)
            tj.ranges, tj.static = ranges, static
            tj.searcher = _Searcher(ranges, strategy, max_jobs, rng)
            tj.fault_tuning = self.faults.tuning_job_fails
            tj.fault_training = self.faults.training_jobs_fail
            tj.warm_history = parents
            self._tuning_jobs[name.lower()] = tj
            self._tag_arn(arn, tags)
        self._spawn(self._run_tuning, tj, name=f"standin-tuning-{name}")
        return {"HyperParameterTuningJobArn": arn}

    def _check_ranges(self, spec: dict, strategy: str) -> list[_Range]:
        ranges: list[_Range] = []
        names: set[str] = set()

        def add(r: _Range) -> None:
            if r.name in names:
                raise _validation(f"Hyperparameter {r.name} appears in more than one parameter range.")
            names.add(r.name)
            ranges.append(r)

        def tunable(name: str) -> None:
            if name not in kmeans.TUNABLE:
                known = name in kmeans.KNOWN
                raise _validation(
                    f"The hyperparameter tuning job that you requested has the following "
                    f"{'untunable' if known else 'unknown'} hyperparameters: [{name}]. Tunable "
                    "hyperparameters of the kmeans algorithm: "
                    + ", ".join(sorted(kmeans.TUNABLE))
                    + "."
                )

        for r in spec.get("IntegerParameterRanges") or []:
            name = r.get("Name")
            tunable(name)
            if kmeans.TUNABLE[name] != "Integer":
                raise _validation(f"Hyperparameter {name} must be given as a CategoricalParameterRange.")
            lo = _int_str(r.get("MinValue"), f"MinValue of {name}")
            hi = _int_str(r.get("MaxValue"), f"MaxValue of {name}")
            if lo > hi:
                raise _validation(
                    f"MinValue ({lo}) of hyperparameter {name} must be less than or equal to its "
                    f"MaxValue ({hi})."
                )
            for v in (lo, hi):
                try:
                    kmeans.check_value(name, str(v))
                except ValueError as exc:
                    raise _validation(f"Invalid range for {name}: {exc}.") from None
            scaling = r.get("ScalingType") or "Auto"
            if scaling == "ReverseLogarithmic":
                raise _validation(
                    f"ReverseLogarithmic scaling is only valid for continuous ranges, not for {name}."
                )
            if scaling == "Logarithmic" and lo <= 0:
                raise _validation(f"Logarithmic scaling of {name} needs MinValue > 0.")
            add(_Range(name, "Integer", lo, hi, scaling))
        for r in spec.get("ContinuousParameterRanges") or []:
            name = r.get("Name")
            tunable(name)
            raise _validation(
                f"Hyperparameter {name} of the kmeans algorithm takes "
                f"{'integer' if kmeans.TUNABLE[name] == 'Integer' else 'categorical'} values: use "
                f"{'an IntegerParameterRange' if kmeans.TUNABLE[name] == 'Integer' else 'a CategoricalParameterRange'}."
            )
        for r in spec.get("CategoricalParameterRanges") or []:
            name = r.get("Name")
            tunable(name)
            values = list(r.get("Values") or [])
            if not values or len(values) > 30:
                raise _validation(f"CategoricalParameterRange {name} needs 1 to 30 values.")
            if len(set(values)) != len(values):
                raise _validation(f"CategoricalParameterRange {name} has duplicate values.")
            for v in values:
                try:
                    kmeans.check_value(name, v)
                except ValueError as exc:
                    raise _validation(f"Invalid value for {name}: {exc}.") from None
            add(_Range(name, "Categorical", values=values))
        if spec.get("AutoParameters"):
            raise _validation("AutoParameters are not supported by the SageMaker stand-in.")
        if not ranges:
            raise _validation("ParameterRanges must contain at least one hyperparameter range.")
        if len(ranges) > 30:
            raise _validation("A tuning job can search at most 30 hyperparameters.")
        if strategy == "Grid" and any(r.kind != "Categorical" for r in ranges):
            raise _validation("The Grid strategy only supports CategoricalParameterRanges.")
        return ranges

    def _check_training_definition(self, d: dict, ranges: list[_Range], metric: str) -> dict:
        algo = d.get("AlgorithmSpecification") or {}
        if algo.get("AlgorithmName"):
            raise _validation(
                "AlgorithmSpecification.AlgorithmName is not supported by the SageMaker stand-in: "
                "give the built-in K-Means image as TrainingImage."
            )
        self._check_image(algo.get("TrainingImage"), "AlgorithmSpecification.TrainingImage")
        if algo.get("MetricDefinitions"):
            raise _validation(
                "You can't override the metric definitions for Amazon SageMaker algorithms. Please "
                "retry the request without specifying metric definitions."
            )
        if algo.get("TrainingInputMode") not in ("File", "Pipe", "FastFile"):
            raise _validation("AlgorithmSpecification.TrainingInputMode must be File, Pipe or FastFile.")
        _check_role(d.get("RoleArn"), "TrainingJobDefinition.RoleArn")

        static = dict(d.get("StaticHyperParameters") or {})
        tuned_names = {r.name for r in ranges}
        for key, value in static.items():
            if not isinstance(value, str):
                raise _validation(f"Static hyperparameter {key} must be a string.")
            if key.startswith("_"):
                continue
            if key not in kmeans.KNOWN:
                raise _validation(
                    f"Static hyperparameter [{key}] is not a hyperparameter of the kmeans algorithm. "
                    "Known hyperparameters: " + ", ".join(sorted(kmeans.KNOWN)) + "."
                )
            if key in tuned_names:
                raise _validation(
                    f"Hyperparameter {key} is both static and tunable: remove it from "
                    "StaticHyperParameters or from ParameterRanges."
                )
            try:
                kmeans.check_value(key, value)
            except ValueError as exc:
                raise _validation(f"Invalid static hyperparameter: {exc}.") from None
        for required in kmeans.REQUIRED:
            if required not in static:
                raise _validation(
                    f"The required hyperparameter [{required}] of the kmeans algorithm is missing "
                    "from StaticHyperParameters."
                )

        channels = d.get("InputDataConfig") or []
        seen = set()
        for ch in channels:
            cname = ch.get("ChannelName")
            if cname in seen:
                raise _validation(f"Channel name {cname} appears more than once in InputDataConfig.")
            seen.add(cname)
            if cname not in ("train", "test"):
                raise _validation(
                    f"Channel [{cname}] is not supported by the kmeans algorithm: supported channels "
                    "are train (required) and test."
                )
            src = (ch.get("DataSource") or {}).get("S3DataSource")
            if not src:
                raise _validation(
                    f"Channel {cname}: only S3DataSource is supported by the SageMaker stand-in."
                )
            if src.get("S3DataType") != "S3Prefix":
                raise _validation(
                    f"Channel {cname}: S3DataType {src.get('S3DataType')} is not supported by the "
                    "SageMaker stand-in; use S3Prefix."
                )
            _parse_s3_uri(src.get("S3Uri"), f"Channel {cname} S3Uri")
            ctype, cparams = kmeans.parse_content_type(ch.get("ContentType"))
            if ctype not in ("", "text/csv", "application/x-recordio-protobuf"):
                raise _validation(
                    f"Content type {ch.get('ContentType')} is not supported for channel {cname} by "
                    "the kmeans algorithm. Supported content types: text/csv, "
                    "application/x-recordio-protobuf."
                )
            if ctype == "text/csv" and "label_size" in cparams:
                if not re.fullmatch(r"\d+", cparams["label_size"]):
                    raise _validation(
                        f"Channel {cname}: label_size in content type '{ch.get('ContentType')}' "
                        "must be a non-negative integer."
                    )
        if "train" not in seen:
            raise _validation("The kmeans algorithm requires a channel named train in InputDataConfig.")
        if metric.startswith("test:") and "test" not in seen:
            raise _validation(
                f"The objective metric {metric} is computed on the test channel: add a channel "
                "named test to InputDataConfig."
            )

        out = d.get("OutputDataConfig") or {}
        _parse_s3_uri(out.get("S3OutputPath"), "OutputDataConfig.S3OutputPath")
        self._check_kms(out.get("KmsKeyId"), "OutputDataConfig.KmsKeyId")
        rc = d.get("ResourceConfig")
        if d.get("HyperParameterTuningResourceConfig"):
            raise _validation(
                "HyperParameterTuningResourceConfig is not supported by the SageMaker stand-in: "
                "use ResourceConfig."
            )
        if not rc:
            raise _validation("TrainingJobDefinition.ResourceConfig is required.")
        if not rc.get("InstanceType"):
            raise _validation("ResourceConfig.InstanceType is required.")
        if not isinstance(rc.get("InstanceCount"), int) or rc["InstanceCount"] < 1:
            raise _validation("ResourceConfig.InstanceCount must be an integer >= 1.")
        if not isinstance(rc.get("VolumeSizeInGB"), int) or rc["VolumeSizeInGB"] < 1:
            raise _validation("ResourceConfig.VolumeSizeInGB must be an integer >= 1.")
        self._check_nvme_kms(rc.get("InstanceType"), rc.get("VolumeKmsKeyId"), "VolumeKmsKeyId")
        self._check_kms(rc.get("VolumeKmsKeyId"), "ResourceConfig.VolumeKmsKeyId")
        stop = d.get("StoppingCondition") or {}
        if d.get("EnableManagedSpotTraining"):
            if "MaxWaitTimeInSeconds" not in stop or stop["MaxWaitTimeInSeconds"] < stop.get(
                "MaxRuntimeInSeconds", 86400
            ):
                raise _validation(
                    "Managed spot training needs StoppingCondition.MaxWaitTimeInSeconds, at least "
                    "MaxRuntimeInSeconds."
                )
        vpc = d.get("VpcConfig")
        if vpc is not None and (
            not 1 <= len(vpc.get("Subnets") or []) <= 16
            or not 1 <= len(vpc.get("SecurityGroupIds") or []) <= 5
        ):
            raise _validation("VpcConfig needs 1-16 Subnets and 1-5 SecurityGroupIds.")
        return static

    def _check_warm_start(self, warm: dict | None, ranges: list[_Range]) -> list:
        if not warm:
            return []
        parents = warm.get("ParentHyperParameterTuningJobs") or []
        if not 1 <= len(parents) <= 5:
            raise _validation("WarmStartConfig needs 1 to 5 ParentHyperParameterTuningJobs.")
        history = []
        with self._lock:
            for parent in parents:
                pname = parent.get("HyperParameterTuningJobName", "")
                ptj = self._tuning_jobs.get(pname.lower())
                if ptj is None:
                    raise ApiError(
                        "ResourceNotFound",
                        f"Amazon SageMaker can't find a tuning job with name {pname}",
                    )
                if ptj.status not in ("Completed", "Stopped", "Failed"):
                    raise _validation(
                        f"Parent tuning job {pname} is {ptj.status}: warm start needs finished jobs."
                    )
                for job in ptj.jobs:
                    if job.objective is None:
                        continue
                    if all(r.name in job.tuned and r.contains(job.tuned[r.name]) for r in ranges):
                        history.append(({r.name: job.tuned[r.name] for r in ranges}, job.objective))
        return history

    # -- running a tuning job --------------------------------------------------------------------

    def _run_tuning(self, tj: _TuningJob) -> None:
        try:
            self._run_tuning_jobs(tj)
        except Exception as exc:  # a bug: fail the tuning job visibly
            log.exception("tuning job %s crashed", tj.name)
            with self._lock:
                tj.status = "Failed"
                tj.failure_reason = _clip_reason(f"InternalServerError: stand-in crashed: {exc!r}")
                tj.ended = tj.modified = _now()

    def _run_tuning_jobs(self, tj: _TuningJob) -> None:
        limits = tj.config["ResourceLimits"]
        max_jobs = limits["MaxNumberOfTrainingJobs"]
        parallel = max(1, min(limits["MaxParallelTrainingJobs"], self.max_workers_per_tuning_job))
        if tj.fault_tuning:
            with self._lock:
                tj.status = "Failed"
                tj.failure_reason = _clip_reason(tj.fault_tuning)
                tj.ended = tj.modified = _now()
            return
        launched = 0
        running: dict = {}
        with ThreadPoolExecutor(parallel, thread_name_prefix=f"standin-train-{tj.name}") as pool:
            while True:
                with self._lock:
                    halted = self._halt.is_set()
                    stopping = tj.stop_requested or halted
                    failed = sum(1 for j in tj.jobs if j.status == "Failed")
                    succeeded = sum(1 for j in tj.jobs if j.status == "Completed")
                    give_up = failed >= NO_SUCCESS_ATTEMPTS and succeeded == 0
                    while (
                        not stopping and not give_up and launched < max_jobs and len(running) < parallel
                    ):
                        job = self._new_training_job(tj)
                        running[pool.submit(self._run_training, tj, job)] = job
                        launched += 1
                    if stopping:
                        for job in running.values():
                            job.stop.set()
                            if job.status == "InProgress":
                                job.status, job.modified = "Stopping", _now()
                                self._secondary(job, "Stopping", "Stopping the training job")
                if not running:
                    break
                done, _ = wait(list(running), timeout=0.05, return_when=FIRST_COMPLETED)
                for fut in done:
                    running.pop(fut)
                    fut.result()
        with self._lock:
            now = _now()
            failed = sum(1 for j in tj.jobs if j.status == "Failed")
            succeeded = sum(1 for j in tj.jobs if j.status == "Completed")
            if tj.stop_requested or self._halt.is_set():
                tj.status = "Stopped"
            elif succeeded == 0:
                tj.status = "Failed"
                tj.failure_reason = (
                    f"No training job succeeded after {failed} attempts. Please take a look at the "
                    "training job failures to get more details."
                )
            else:
                tj.status = "Completed"
            tj.ended = tj.modified = now

    def _new_training_job(self, tj: _TuningJob) -> _TrainingJob:
        """Propose hyperparameters and register the next training job (caller holds the lock)."""
        history = list(tj.warm_history) + [
            (j.tuned, j.objective) for j in tj.jobs if j.status not in ("InProgress", "Stopping")
        ]
        pending = [j.tuned for j in tj.jobs if j.status in ("InProgress", "Stopping")]
        tuned = tj.searcher.propose(history, pending)
        index = len(tj.jobs) + 1
        while True:
            name = f"{tj.name}-{index:03d}-{secrets.token_hex(4)}"
            if name.lower() not in self._training_jobs:
                break
        hps = dict(tj.static)
        hps.update(tuned)
        hps["_tuning_objective_metric"] = tj.objective_metric
        job = _TrainingJob(
            name, self._arn("training-job", name), tj, index, dict(tuned), hps, _now()
        )
        tj.jobs.append(job)
        tj.modified = job.created
        self._training_jobs[name.lower()] = job
        self._tag_arn(job.arn, tj.tags)
        return job

    def _secondary(self, job: _TrainingJob, status: str, message: str) -> None:
        now = _now()
        with self._lock:
            if job.transitions and "EndTime" not in job.transitions[-1]:
                job.transitions[-1]["EndTime"] = now
            job.transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
            job.secondary = status
            job.modified = now

    def _run_training(self, tj: _TuningJob, job: _TrainingJob) -> None:
        def should_stop() -> bool:
            return job.stop.is_set() or self._halt.is_set()

        try:
            if should_stop():
                raise kmeans.Stopped()
            with self._lock:
                job.started = _now()
            self._secondary(job, "Downloading", "Downloading input data")
            if tj.fault_training:
                raise _JobFailure(tj.fault_training)
            try:
                params = kmeans.KMeansParams.from_hyperparameters(job.hyperparameters)
            except ValueError as exc:
                raise kmeans.DataError(f"Invalid hyperparameters: {exc}") from None
            data = self._channel_data(tj, params)
            if should_stop():
                raise kmeans.Stopped()
            self._secondary(
                job, "Training", "Training image download completed. Training in progress."
            )
            rng = np.random.default_rng(zlib.crc32(job.name.encode()))
            centroids = kmeans.train(data["train"], params, rng, should_stop)
            metrics = {}
            if "test" in data:
                scores = kmeans.evaluate(data["test"], centroids)
                metrics = {"test:msd": scores["msd"], "test:ssd": scores["ssd"]}
            self._secondary(job, "Uploading", "Uploading generated training model")
            artifact = self._upload_model(tj, job, centroids)
            remaining = job.created + self.timing.training_job_min_seconds - _now()
            if remaining > 0:
                job.stop.wait(remaining)
            if should_stop():
                raise kmeans.Stopped()
            with self._lock:
                job.metrics, job.metrics_time = metrics, _now()
                job.artifact = artifact
                job.objective = metrics.get(tj.objective_metric)
                self._finish_job(job, "Completed", "Completed", "Training job completed")
        except kmeans.Stopped:
            with self._lock:
                self._finish_job(job, "Stopped", "Stopped", "Training job stopped")
        except kmeans.DataError as exc:
            with self._lock:
                job.failure_reason = _clip_reason(f"ClientError: {exc}")
                self._finish_job(job, "Failed", "Failed", "Training job failed")
        except _JobFailure as exc:
            with self._lock:
                job.failure_reason = _clip_reason(str(exc))
                self._finish_job(job, "Failed", "Failed", "Training job failed")
        except Exception as exc:  # unexpected: as SageMaker reports its own errors
            log.exception("training job %s crashed", job.name)
            with self._lock:
                job.failure_reason = _clip_reason(
                    f"InternalServerError: We encountered an internal error. Please try again. ({exc!r})"
                )
                self._finish_job(job, "Failed", "Failed", "Training job failed")

    def _finish_job(self, job: _TrainingJob, status: str, secondary: str, message: str) -> None:
        now = _now()
        job.status = status
        job.ended = now
        if job.started is None:
            job.started = now
        self._secondary(job, secondary, message)
        job.transitions[-1]["EndTime"] = now
        job.modified = now
        job.tuning.modified = now

    def _channel_data(self, tj: _TuningJob, params: kmeans.KMeansParams) -> dict[str, np.ndarray]:
        """Every channel parsed once per tuning job (all its training jobs read the same data)."""
        with tj.data_lock:
            if tj.data is None:
                try:
                    tj.data = self._load_channels(tj.definition, params)
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

    def _load_channels(self, definition: dict, params: kmeans.KMeansParams) -> dict[str, np.ndarray]:
        s3 = self._client("s3")
        out = {}
        for ch in definition.get("InputDataConfig") or []:
            cname = ch["ChannelName"]
            uri = ch["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, prefix = _parse_s3_uri(uri, "S3Uri")
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
                raise kmeans.DataError(
                    f"Data download failed: could not list {uri} for channel '{cname}': {exc}"
                ) from None
            if not objects:
                raise kmeans.DataError(
                    f"Data download failed: no objects found under {uri} for channel '{cname}'."
                )
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
                        arr = kmeans.parse_csv(
                            body, label_size=label_size, feature_dim=params.feature_dim, source=source
                        )
                    else:
                        arr = kmeans.parse_recordio_protobuf(
                            body, feature_dim=params.feature_dim, source=source
                        )
                except kmeans.DataError as exc:
                    raise kmeans.DataError(
                        f"Unable to read data channel '{cname}'. Requested content-type is "
                        f"'{ctype_raw}'. Please verify the data matches the requested content-type. "
                        f"(caused by: {exc})"
                    ) from None
                parts.append(arr)
            data = np.concatenate(parts) if parts else np.zeros((0, params.feature_dim))
            if len(data) == 0:
                raise kmeans.DataError(
                    f"No records found in channel '{cname}' ({uri}): the objects are empty."
                )
            out[cname] = data
        return out

    def _upload_model(self, tj: _TuningJob, job: _TrainingJob, centroids: np.ndarray) -> str:
        out = tj.definition["OutputDataConfig"]
        bucket, prefix = _parse_s3_uri(out["S3OutputPath"], "S3OutputPath")
        prefix = prefix.strip("/")
        key = f"{prefix}/{job.name}/output/model.tar.gz" if prefix else f"{job.name}/output/model.tar.gz"
        extra = {"ServerSideEncryption": "aws:kms"}
        if out.get("KmsKeyId"):
            extra["SSEKMSKeyId"] = out["KmsKeyId"]
        try:
            self._client("s3").put_object(
                Bucket=bucket, Key=key, Body=write_model_tar_gz(centroids), **extra
            )
        except botocore.exceptions.ClientError as exc:
            raise _JobFailure(
                f"ClientError: Failed to upload the model artifact to s3://{bucket}/{key}: {exc}"
            ) from None
        return f"s3://{bucket}/{key}"

    # -- describing tuning and training jobs -----------------------------------------------------

    def _get_tuning_job(self, name: Any) -> _TuningJob:
        tj = self._tuning_jobs.get(str(name).lower())
        if tj is None:
            raise ApiError(
                "ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}"
            )
        return tj

    def _summary(self, job: _TrainingJob) -> dict:
        out = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TuningJobName": job.tuning.name,
            "CreationTime": job.created,
            "TrainingStartTime": job.started,
            "TrainingEndTime": job.ended,
            "TrainingJobStatus": job.status,
            "TunedHyperParameters": dict(job.tuned),
            "FailureReason": job.failure_reason,
            "ObjectiveStatus": job.objective_status,
        }
        if job.objective is not None:
            out["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": job.tuning.objective_metric,
                "Value": job.objective,
            }
        return out

    def _describe_hyper_parameter_tuning_job(self, p: dict) -> dict:
        with self._lock:
            tj = self._get_tuning_job(p.get("HyperParameterTuningJobName"))
            jobs = tj.jobs
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
                "HyperParameterTuningJobName": tj.name,
                "HyperParameterTuningJobArn": tj.arn,
                "HyperParameterTuningJobConfig": copy.deepcopy(tj.request["HyperParameterTuningJobConfig"]),
                "TrainingJobDefinition": copy.deepcopy(tj.request["TrainingJobDefinition"]),
                "HyperParameterTuningJobStatus": tj.status,
                "CreationTime": tj.created,
                "HyperParameterTuningEndTime": tj.ended,
                "LastModifiedTime": tj.modified,
                "TrainingJobStatusCounters": counters,
                "ObjectiveStatusCounters": objectives,
                "BestTrainingJob": self._summary(best) if best else None,
                "WarmStartConfig": copy.deepcopy(tj.request.get("WarmStartConfig")),
                "FailureReason": tj.failure_reason,
            }
            if tj.ended is not None:
                out["ConsumedResources"] = {"RuntimeInSeconds": max(1, int(round(tj.ended - tj.created)))}
            return out

    def _list_training_jobs_for_tuning_job(self, p: dict) -> dict:
        sort_by = p.get("SortBy") or "Name"
        order = p.get("SortOrder") or "Ascending"
        status = p.get("StatusEquals")
        if sort_by not in ("Name", "CreationTime", "Status", "FinalObjectiveMetricValue"):
            raise _validation(
                f"1 validation error detected: Value '{sort_by}' at 'sortBy' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Name, CreationTime, Status, "
                "FinalObjectiveMetricValue]"
            )
        if order not in ("Ascending", "Descending"):
            raise _validation(
                f"1 validation error detected: Value '{order}' at 'sortOrder' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Ascending, Descending]"
            )
        with self._lock:
            tj = self._get_tuning_job(p.get("HyperParameterTuningJobName"))
            jobs = list(tj.jobs)
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
            page, nxt = _page(jobs, p)
            return {"TrainingJobSummaries": [self._summary(j) for j in page], "NextToken": nxt}

    def _stop_hyper_parameter_tuning_job(self, p: dict) -> dict:
        with self._lock:
            tj = self._get_tuning_job(p.get("HyperParameterTuningJobName"))
            if tj.status != "InProgress":
                raise _validation(
                    f"The hyperparameter tuning job {tj.name} is {tj.status} and cannot be stopped: "
                    "only an InProgress tuning job can be stopped."
                )
            tj.stop_requested = True
            tj.status = "Stopping"
            tj.modified = _now()
            for job in tj.jobs:
                if job.status == "InProgress":
                    job.stop.set()
                    job.status = "Stopping"
                    self._secondary(job, "Stopping", "Stopping the training job")
        return {}

    def _describe_training_job(self, p: dict) -> dict:
        with self._lock:
            name = p.get("TrainingJobName")
            job = self._training_jobs.get(str(name).lower())
            if job is None:
                raise _validation("Requested resource not found.")
            d = job.tuning.definition
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
            if job.ended is not None and job.started is not None:
                seconds = max(1, int(round(job.ended - job.started)))
            out = {
                "TrainingJobName": job.name,
                "TrainingJobArn": job.arn,
                "TuningJobArn": job.tuning.arn,
                "ModelArtifacts": {"S3ModelArtifacts": job.artifact} if job.artifact else None,
                "TrainingJobStatus": job.status,
                "SecondaryStatus": job.secondary,
                "FailureReason": job.failure_reason,
                "HyperParameters": dict(job.hyperparameters),
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
                "CreationTime": job.created,
                "TrainingStartTime": job.started,
                "TrainingEndTime": job.ended,
                "LastModifiedTime": job.modified,
                "SecondaryStatusTransitions": copy.deepcopy(job.transitions),
                "FinalMetricDataList": [
                    {"MetricName": k, "Value": v, "Timestamp": job.metrics_time}
                    for k, v in job.metrics.items()
                ]
                or None,
                "EnableNetworkIsolation": bool(d.get("EnableNetworkIsolation", False)),
                "EnableInterContainerTrafficEncryption": bool(
                    d.get("EnableInterContainerTrafficEncryption", False)
                ),
                "EnableManagedSpotTraining": bool(d.get("EnableManagedSpotTraining", False)),
                "CheckpointConfig": copy.deepcopy(d.get("CheckpointConfig")),
                "TrainingTimeInSeconds": seconds,
                "BillableTimeInSeconds": seconds,
                "Environment": copy.deepcopy(d.get("Environment")),
                "RetryStrategy": copy.deepcopy(d.get("RetryStrategy")),
            }
            return out

    # ==========================================================================================
    # Models and endpoint configurations
    # ==========================================================================================

    def _check_model_data(self, url: Any, field: str) -> None:
        bucket, key = _parse_s3_uri(url, field)
        try:
            self._client("s3").head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket", "403", "AccessDenied"):
                raise _validation(f"Could not find model data at {url}.") from None
            raise

    def _create_model(self, p: dict) -> dict:
        name = _check_name(p.get("ModelName"), "ModelName")
        tags = _check_tags(p.get("Tags"))
        primary, containers = p.get("PrimaryContainer"), p.get("Containers")
        if primary and containers:
            raise _validation("Specify either PrimaryContainer or Containers, not both.")
        if not primary and not containers:
            raise _validation("One of PrimaryContainer or Containers is required.")
        if containers and len(containers) > 1:
            raise _validation(
                "Inference pipelines (several Containers) are not supported by the SageMaker "
                "stand-in: give one container holding the K-Means model."
            )
        container = primary or containers[0]
        if container.get("ModelPackageName"):
            raise _validation("ModelPackageName is not supported by the SageMaker stand-in.")
        if container.get("Mode", "SingleModel") != "SingleModel":
            raise _validation("Multi-model endpoints are not supported by the SageMaker stand-in.")
        self._check_image(container.get("Image"), "Image")
        if p.get("ExecutionRoleArn") is not None:
            _check_role(p.get("ExecutionRoleArn"), "ExecutionRoleArn")
        source = container.get("ModelDataSource")
        if source:
            s3src = source.get("S3DataSource") or {}
            if s3src.get("S3DataType") != "S3Object" or s3src.get("CompressionType") != "Gzip":
                raise _validation(
                    "The K-Means container loads a model.tar.gz: ModelDataSource.S3DataSource must "
                    "be S3DataType S3Object with CompressionType Gzip (or use ModelDataUrl)."
                )
            self._check_model_data(s3src.get("S3Uri"), "ModelDataSource.S3DataSource.S3Uri")
        if container.get("ModelDataUrl") is not None:
            self._check_model_data(container["ModelDataUrl"], "ModelDataUrl")
        vpc = p.get("VpcConfig")
        if vpc is not None and (
            not 1 <= len(vpc.get("Subnets") or []) <= 16
            or not 1 <= len(vpc.get("SecurityGroupIds") or []) <= 5
        ):
            raise _validation("VpcConfig needs 1-16 Subnets and 1-5 SecurityGroupIds.")
        arn = self._arn("model", name)
        with self._lock:
            if name.lower() in self._models:
                raise _validation(f'Cannot create already existing model "{arn}".')
            request = copy.deepcopy({k: v for k, v in p.items() if k != "Tags"})
            self._models[name.lower()] = _Model(name, arn, request, _now())
            self._tag_arn(arn, tags)
        return {"ModelArn": arn}

    def _get_model(self, name: Any) -> _Model:
        m = self._models.get(str(name).lower())
        if m is None:
            raise _validation(f'Could not find model "{self._arn("model", str(name))}".')
        return m

    def _describe_model(self, p: dict) -> dict:
        with self._lock:
            m = self._get_model(p.get("ModelName"))
            out = copy.deepcopy(m.request)
            out.update({"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.created})
            out.setdefault("EnableNetworkIsolation", False)
            return out

    def _delete_model(self, p: dict) -> dict:
        with self._lock:
            m = self._get_model(p.get("ModelName"))
            del self._models[m.name.lower()]
            self._tags.pop(m.arn, None)
        return {}

    def _list(self, items: list, p: dict, name_attr: str, extra_time: str | None = None) -> list:
        contains = p.get("NameContains")
        if contains:
            items = [i for i in items if contains.lower() in getattr(i, name_attr).lower()]
        for bound, cmp in (("CreationTimeBefore", float.__lt__), ("CreationTimeAfter", float.__gt__)):
            if p.get(bound) is not None:
                items = [i for i in items if cmp(float(i.created), float(p[bound]))]
        if extra_time:
            for bound, cmp in (
                ("LastModifiedTimeBefore", float.__lt__),
                ("LastModifiedTimeAfter", float.__gt__),
            ):
                if p.get(bound) is not None:
                    items = [i for i in items if cmp(float(i.modified), float(p[bound]))]
        sort_by = p.get("SortBy") or "CreationTime"
        order = p.get("SortOrder") or "Descending"
        if sort_by not in ("Name", "CreationTime") and not (extra_time and sort_by == "Status"):
            raise _validation(f"Invalid SortBy value '{sort_by}'.")
        if order not in ("Ascending", "Descending"):
            raise _validation(f"Invalid SortOrder value '{order}'.")
        key = {
            "Name": lambda i: getattr(i, name_attr).lower(),
            "CreationTime": lambda i: i.created,
            "Status": lambda i: getattr(i, "status", ""),
        }[sort_by]
        return sorted(items, key=key, reverse=order == "Descending")

    def _list_models(self, p: dict) -> dict:
        with self._lock:
            items = self._list(list(self._models.values()), p, "name")
            page, nxt = _page(items, p)
            return {
                "Models": [
                    {"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.created} for m in page
                ],
                "NextToken": nxt,
            }

    def _create_endpoint_config(self, p: dict) -> dict:
        name = _check_name(p.get("EndpointConfigName"), "EndpointConfigName")
        tags = _check_tags(p.get("Tags"))
        variants = p.get("ProductionVariants") or []
        if not 1 <= len(variants) <= 10:
            raise _validation("ProductionVariants must hold 1 to 10 variants.")
        for unsupported in ("AsyncInferenceConfig", "ExplainerConfig", "ShadowProductionVariants"):
            if p.get(unsupported):
                raise _validation(f"{unsupported} is not supported by the SageMaker stand-in.")
        kms = p.get("KmsKeyId")
        names = set()
        for v in variants:
            vname = _check_name(v.get("VariantName"), "VariantName")
            if vname.lower() in names:
                raise _validation(f"Duplicate VariantName {vname} in ProductionVariants.")
            names.add(vname.lower())
            if v.get("ServerlessConfig"):
                if kms:
                    raise _validation("KmsKeyId is not supported for serverless endpoints.")
            else:
                if not v.get("InstanceType"):
                    raise _validation(f"Variant {vname}: InstanceType is required.")
                if not isinstance(v.get("InitialInstanceCount"), int) or v["InitialInstanceCount"] < 1:
                    raise _validation(f"Variant {vname}: InitialInstanceCount must be >= 1.")
                self._check_nvme_kms(v["InstanceType"], kms, "KmsKeyId")
            if float(v.get("InitialVariantWeight", 1.0)) < 0:
                raise _validation(f"Variant {vname}: InitialVariantWeight must be >= 0.")
            with self._lock:
                self._get_model(v.get("ModelName"))
        self._check_kms(kms, "KmsKeyId")
        arn = self._arn("endpoint-config", name)
        with self._lock:
            if name.lower() in self._endpoint_configs:
                raise _validation(f'Cannot create already existing endpoint configuration "{arn}".')
            request = copy.deepcopy({k: v for k, v in p.items() if k != "Tags"})
            for v in request["ProductionVariants"]:
                if not v.get("ServerlessConfig"):
                    v.setdefault("InitialVariantWeight", 1.0)
            self._endpoint_configs[name.lower()] = _EndpointConfig(name, arn, request, _now())
            self._tag_arn(arn, tags)
        return {"EndpointConfigArn": arn}

    def _get_endpoint_config(self, name: Any) -> _EndpointConfig:
        c = self._endpoint_configs.get(str(name).lower())
        if c is None:
            raise _validation(
                f'Could not find endpoint configuration "{self._arn("endpoint-config", str(name))}".'
            )
        return c

    def _describe_endpoint_config(self, p: dict) -> dict:
        with self._lock:
            c = self._get_endpoint_config(p.get("EndpointConfigName"))
            out = copy.deepcopy(c.request)
            out.update(
                {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.created}
            )
            return out

    def _delete_endpoint_config(self, p: dict) -> dict:
        # SageMaker deletes a configuration even while an endpoint uses it.
        with self._lock:
            c = self._get_endpoint_config(p.get("EndpointConfigName"))
            del self._endpoint_configs[c.name.lower()]
            self._tags.pop(c.arn, None)
        return {}

    def _list_endpoint_configs(self, p: dict) -> dict:
        with self._lock:
            items = self._list(list(self._endpoint_configs.values()), p, "name")
            page, nxt = _page(items, p)
            return {
                "EndpointConfigs": [
                    {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.created}
                    for c in page
                ],
                "NextToken": nxt,
            }

    # ==========================================================================================
    # Endpoints
    # ==========================================================================================

    def _get_endpoint(self, name: Any) -> _Endpoint:
        ep = self._endpoints.get(str(name).lower())
        if ep is None:
            raise _validation(f'Could not find endpoint "{self._arn("endpoint", str(name))}".')
        return ep

    def _create_endpoint(self, p: dict) -> dict:
        name = _check_name(p.get("EndpointName"), "EndpointName")
        tags = _check_tags(p.get("Tags"))
        arn = self._arn("endpoint", name)
        with self._lock:
            if name.lower() in self._endpoints:
                raise _validation(f'Cannot create already existing endpoint "{arn}".')
            config = self._get_endpoint_config(p.get("EndpointConfigName"))
            for v in config.request["ProductionVariants"]:
                self._get_model(v.get("ModelName"))
            ep = _Endpoint(name, arn, config.name, _now(), tags)
            ep.variant_specs = copy.deepcopy(config.request["ProductionVariants"])
            ep.deployment_config = copy.deepcopy(p.get("DeploymentConfig"))
            ep.generation += 1
            self._endpoints[name.lower()] = ep
            self._tag_arn(arn, tags)
            fault = self.faults.endpoint_creation_fails
            generation = ep.generation
        self._spawn(self._deploy, ep, config.name, generation, fault, False, name=f"standin-ep-{name}")
        return {"EndpointArn": arn}

    def _load_variants(self, config_name: str) -> list[_Variant]:
        """Load every variant's model as the K-Means container would (raises _JobFailure)."""
        with self._lock:
            config = self._endpoint_configs.get(config_name.lower())
            if config is None:
                raise _JobFailure(
                    f'Could not find endpoint configuration "{self._arn("endpoint-config", config_name)}".'
                )
            specs = copy.deepcopy(config.request["ProductionVariants"])
            models = {}
            for spec in specs:
                model = self._models.get(str(spec.get("ModelName")).lower())
                if model is None:
                    raise _JobFailure(
                        f'Could not find model "{self._arn("model", str(spec.get("ModelName")))}".'
                    )
                models[spec["VariantName"]] = copy.deepcopy(model.request)
        variants = []
        for spec in specs:
            req = models[spec["VariantName"]]
            container = req.get("PrimaryContainer") or (req.get("Containers") or [{}])[0]
            url = container.get("ModelDataUrl") or (
                (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
            ).get("S3Uri")
            health = (
                f"The primary container for production variant {spec['VariantName']} did not pass "
                "the ping health check. Please check CloudWatch logs for this endpoint."
            )
            if not url:
                raise _JobFailure(f"{health} (The K-Means container found no model: ModelDataUrl is not set.)")
            bucket, key = _parse_s3_uri(url, "ModelDataUrl")
            try:
                data = self._client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
            except botocore.exceptions.ClientError:
                raise _JobFailure(
                    f'Failed to download model data for container "container_1" from URL: "{url}". '
                    "Please ensure that there is an object located at the URL and that the role "
                    "passed to CreateModel has permissions to download the object."
                ) from None
            try:
                centroids = read_model_tar_gz(data)
            except ValueError as exc:
                raise _JobFailure(f"{health} (The K-Means container could not load {url}: {exc})") from None
            variants.append(_Variant(spec, container.get("Image", ""), centroids))
        return variants

    def _deploy(self, ep: _Endpoint, config_name: str, generation: int, fault: str | None, update: bool):
        """Creating/Updating -> InService (or Failed / back to the old config)."""
        if self._sleep(self.timing.endpoint_seconds):
            return
        reason = None
        variants = None
        if fault:
            reason = fault
        else:
            try:
                variants = self._load_variants(config_name)
            except _JobFailure as exc:
                reason = str(exc)
            except Exception as exc:  # pragma: no cover - a bug
                log.exception("deploying endpoint %s crashed", ep.name)
                reason = f"InternalServerError: stand-in crashed: {exc!r}"
        with self._lock:
            if self._endpoints.get(ep.name.lower()) is not ep or ep.generation != generation:
                return
            now = _now()
            ep.modified = now
            ep.pending_config = ep.pending_since = None
            if reason is None:
                ep.status = "InService"
                ep.failure_reason = None
                ep.config_name = config_name
                ep.variants = variants
                ep.variant_specs = [v.spec for v in variants]
            elif update:  # blue/green: the old fleet keeps serving
                ep.status = "InService"
                ep.failure_reason = _clip_reason(reason)
            else:
                ep.status = "Failed"
                ep.failure_reason = _clip_reason(reason)

    def _update_endpoint(self, p: dict) -> dict:
        with self._lock:
            ep = self._get_endpoint(p.get("EndpointName"))
            if ep.status in IN_PROGRESS_ENDPOINT:
                raise _validation(f'Cannot update in-progress endpoint "{ep.arn}".')
            if ep.status != "InService":
                raise _validation(
                    f'Cannot update endpoint "{ep.arn}" with status {ep.status}: only '
                    "DeleteEndpoint is allowed on a failed endpoint."
                )
            config = self._get_endpoint_config(p.get("EndpointConfigName"))
            if config.name.lower() == ep.config_name.lower():
                raise _validation(
                    f'Endpoint "{ep.arn}" already uses endpoint configuration "{config.arn}": '
                    "UpdateEndpoint needs a new EndpointConfig."
                )
            for v in config.request["ProductionVariants"]:
                self._get_model(v.get("ModelName"))
            ep.status = "Updating"
            ep.failure_reason = None
            ep.pending_config = config.name
            ep.pending_since = ep.modified = _now()
            if p.get("DeploymentConfig"):
                ep.deployment_config = copy.deepcopy(p["DeploymentConfig"])
            ep.generation += 1
            generation = ep.generation
            fault = self.faults.endpoint_update_fails
        self._spawn(self._deploy, ep, config.name, generation, fault, True, name=f"standin-ep-{ep.name}")
        return {"EndpointArn": ep.arn}

    def _delete_endpoint(self, p: dict) -> dict:
        with self._lock:
            ep = self._get_endpoint(p.get("EndpointName"))
            if ep.status in IN_PROGRESS_ENDPOINT:
                raise _validation(f'Cannot update in-progress endpoint "{ep.arn}".')
            ep.status = "Deleting"
            ep.variants = None
            ep.failure_reason = None
            ep.modified = _now()
            ep.generation += 1
            generation = ep.generation
        self._spawn(self._finish_delete, ep, generation, name=f"standin-ep-{ep.name}")
        return {}

    def _finish_delete(self, ep: _Endpoint, generation: int) -> None:
        self._sleep(self.timing.endpoint_delete_seconds)
        with self._lock:
            if self._endpoints.get(ep.name.lower()) is ep and ep.generation == generation:
                del self._endpoints[ep.name.lower()]
                self._tags.pop(ep.arn, None)

    def _variant_summaries(self, ep: _Endpoint) -> list[dict] | None:
        out = []
        for spec in ep.variant_specs:
            serving = ep.variants is not None
            summary = {
                "VariantName": spec["VariantName"],
                "CurrentWeight": float(spec.get("InitialVariantWeight", 1.0)) if serving else None,
                "DesiredWeight": float(spec.get("InitialVariantWeight", 1.0)),
                "CurrentInstanceCount": spec.get("InitialInstanceCount") if serving else None,
                "DesiredInstanceCount": spec.get("InitialInstanceCount"),
            }
            if serving:
                image = next((v.image for v in ep.variants if v.name == spec["VariantName"]), None)
                if image:
                    summary["DeployedImages"] = [
                        {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": ep.modified}
                    ]
            elif ep.status == "Creating":
                summary["VariantStatus"] = [
                    {"Status": "Creating", "StatusMessage": "Launching instances", "StartTime": ep.created}
                ]
            if spec.get("ServerlessConfig"):
                summary["CurrentServerlessConfig"] = copy.deepcopy(spec["ServerlessConfig"]) if serving else None
                summary["DesiredServerlessConfig"] = copy.deepcopy(spec["ServerlessConfig"])
            out.append(summary)
        return out or None

    def _describe_endpoint(self, p: dict) -> dict:
        with self._lock:
            ep = self._get_endpoint(p.get("EndpointName"))
            out = {
                "EndpointName": ep.name,
                "EndpointArn": ep.arn,
                "EndpointConfigName": ep.config_name,
                "ProductionVariants": self._variant_summaries(ep) if ep.status != "Failed" else None,
                "EndpointStatus": ep.status,
                "FailureReason": ep.failure_reason,
                "CreationTime": ep.created,
                "LastModifiedTime": ep.modified,
                "LastDeploymentConfig": copy.deepcopy(ep.deployment_config),
            }
            if ep.pending_config:
                out["PendingDeploymentSummary"] = {
                    "EndpointConfigName": ep.pending_config,
                    "StartTime": ep.pending_since,
                }
            return out

    def _list_endpoints(self, p: dict) -> dict:
        status = p.get("StatusEquals")
        with self._lock:
            items = list(self._endpoints.values())
            if status:
                items = [e for e in items if e.status == status]
            items = self._list(items, p, "name", extra_time="LastModifiedTime")
            page, nxt = _page(items, p)
            return {
                "Endpoints": [
                    {
                        "EndpointName": e.name,
                        "EndpointArn": e.arn,
                        "CreationTime": e.created,
                        "LastModifiedTime": e.modified,
                        "EndpointStatus": e.status,
                    }
                    for e in page
                ],
                "NextToken": nxt,
            }

    # ==========================================================================================
    # Tags
    # ==========================================================================================

    def _tagged(self, arn: Any) -> list[dict[str, str]]:
        if not isinstance(arn, str) or len(arn) > 256:
            raise _validation(f"Invalid ResourceArn '{arn}'.")
        tags = self._tags.get(arn)
        if tags is None:
            for key, value in self._tags.items():
                if key.lower() == arn.lower():
                    return value
            raise _validation(f"Resource {arn} not found.")
        return tags

    def _add_tags(self, p: dict) -> dict:
        new = _check_tags(p.get("Tags"))
        with self._lock:
            tags = self._tagged(p.get("ResourceArn"))
            merged = {t["Key"]: t["Value"] for t in tags}
            merged.update({t["Key"]: t["Value"] for t in new})
            if len(merged) > 50:
                raise _validation(
                    f"Resource {p.get('ResourceArn')} would have {len(merged)} tags; at most 50 are allowed."
                )
            tags[:] = [{"Key": k, "Value": v} for k, v in merged.items()]
        return {"Tags": new}

    def _list_tags(self, p: dict) -> dict:
        with self._lock:
            tags = list(self._tagged(p.get("ResourceArn")))
        page, nxt = _page(tags, p, default_max=50)
        return {"Tags": page, "NextToken": nxt}

    # ==========================================================================================
    # SageMaker Runtime
    # ==========================================================================================

    def _runtime_http(self, operation: str, request) -> Any:
        url = request.url
        if operation != "InvokeEndpoint":
            raise ApiError(
                "UnknownOperationException",
                f"The SageMaker Runtime stand-in does not implement {operation}; it implements "
                "InvokeEndpoint.",
            )
        parts = urlsplit(url).path.split("/")
        if len(parts) < 4 or parts[1] != "endpoints" or parts[3] != "invocations":
            raise ApiError("ValidationError", f"Unexpected InvokeEndpoint path {urlsplit(url).path}")
        name = unquote(parts[2])
        headers = request.headers
        body = _read_body(request.body)
        if len(body) > MAX_INVOKE_BODY:
            raise ApiError(
                "ValidationError",
                "1 validation error detected: Value at 'body' failed to satisfy constraint: Member "
                f"must have length less than or equal to {MAX_INVOKE_BODY}",
            )
        with self._lock:
            ep = self._endpoints.get(name.lower())
            variants = ep.variants if ep is not None else None
            ep_name = ep.name if ep is not None else name
        if not variants:
            raise ApiError("ValidationError", f"Endpoint {name} of account {self.account_id} not found.")
        target = _header(headers, "X-Amzn-SageMaker-Target-Variant")
        if target:
            chosen = [v for v in variants if v.name == target]
            if not chosen:
                raise ApiError(
                    "ValidationError",
                    f"Target variant {target} is not a production variant of endpoint {ep_name}.",
                )
            variant = chosen[0]
        else:
            weights = np.array([v.weight for v in variants])
            if weights.sum() <= 0:
                raise ApiError("ValidationError", f"Endpoint {ep_name} has no variant with weight > 0.")
            with self._lock:
                pick = int(self._invoke_rng.choice(len(variants), p=weights / weights.sum()))
            variant = variants[pick]

        def model_error(status: int, message: str) -> ApiError:
            log_group = f"/aws/sagemaker/Endpoints/{ep_name}"
            return ApiError(
                "ModelError",
                f'Received client error ({status}) from primary with message "{message}". See '
                f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                f"#logEventViewer:group={log_group} in account {self.account_id} for more information.",
                status=424,
                ErrorCode="CLIENT_ERROR_FROM_MODEL",
                OriginalStatusCode=status,
                OriginalMessage=message,
                LogStreamArn=f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{log_group}",
            )

        content_type = _header(headers, "Content-Type") or "application/octet-stream"
        ctype, cparams = kmeans.parse_content_type(content_type)
        accept_raw = _header(headers, "Accept") or "application/json"
        accept = kmeans.parse_content_type(accept_raw.split(",")[0])[0]
        if accept in ("*/*", ""):
            accept = "application/json"
        if accept not in ("application/json", "application/jsonlines"):
            raise model_error(
                406,
                f"Accept type {accept_raw} is not supported by the stand-in's K-Means container; "
                "use application/json or application/jsonlines.",
            )
        dim = variant.centroids.shape[1]
        try:
            if ctype == "text/csv":
                label_size = int(cparams.get("label_size", "0"))
                X = kmeans.parse_csv(body, label_size=label_size, feature_dim=None, source="payload")
            elif ctype == "application/json":
                X = _json_instances(body)
            elif ctype == "application/jsonlines":
                X = _jsonlines_instances(body)
            elif ctype == "application/x-recordio-protobuf":
                X = kmeans.parse_recordio_protobuf(body, feature_dim=dim, source="payload")
            else:
                raise model_error(
                    415,
                    f"Content-type {content_type} not supported. Supported content-type is text/csv, "
                    "application/json, application/jsonlines, application/x-recordio-protobuf",
                )
        except kmeans.DataError as exc:
            raise model_error(400, f"Unable to evaluate payload provided: {exc}") from None
        if X.ndim != 2 or len(X) == 0:
            raise model_error(400, "Unable to evaluate payload provided: the payload holds no records")
        if X.shape[1] != dim:
            kind = {"text/csv": "csv", "application/json": "json"}.get(ctype, ctype)
            raise model_error(
                400,
                f"Unable to evaluate payload provided: Feature size of {kind} inference data "
                f"{X.shape[1]} is not consistent with feature size of trained model {dim}",
            )
        idx, dist = kmeans.predict(X, variant.centroids)
        if self.faults.endpoint_answers_wrong:
            dist = dist * np.float32(2)
        preds = [
            {"closest_cluster": float(i), "distance_to_cluster": float(d)} for i, d in zip(idx, dist)
        ]
        if accept == "application/jsonlines":
            payload = "\n".join(json.dumps(p) for p in preds).encode("utf-8")
        else:
            payload = json.dumps({"predictions": preds}).encode("utf-8")
        return hook.make_response(
            url,
            200,
            {"Content-Type": accept, "x-Amzn-Invoked-Production-Variant": variant.name},
            payload,
        )


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


def _read_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        pos = body.tell() if hasattr(body, "tell") else None
        data = body.read()
        if pos is not None and hasattr(body, "seek"):
            body.seek(pos)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return bytes(body)


def _features(value: Any, where: str) -> list[float]:
    if isinstance(value, dict):  # {"values": [...]} (the dense JSON format's data.features)
        value = value.get("values")
    if not isinstance(value, list) or not value:
        raise kmeans.DataError(f"{where}: features must be a non-empty list of numbers")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise kmeans.DataError(f"{where}: {x!r} is not a finite number")
        out.append(float(x))
    return out


def _instance_features(inst: Any, where: str) -> list[float]:
    if isinstance(inst, dict):
        if "features" in inst:
            return _features(inst["features"], where)
        if isinstance(inst.get("data"), dict) and "features" in inst["data"]:
            return _features(inst["data"]["features"], where)
    raise kmeans.DataError(f'{where}: expected {{"features": [...]}}')


def _rows(rows: list[list[float]]) -> np.ndarray:
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise kmeans.DataError(f"records have different numbers of features: {sorted(widths)}")
    return np.array(rows, dtype=np.float64)


def _json_instances(body: bytes) -> np.ndarray:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise kmeans.DataError(f"invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
        raise kmeans.DataError('expected {"instances": [{"features": [...]}, ...]}')
    return _rows([_instance_features(inst, f"instance {i}") for i, inst in enumerate(doc["instances"])])


def _jsonlines_instances(body: bytes) -> np.ndarray:
    rows = []
    for no, line in enumerate(body.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            inst = json.loads(line)
        except ValueError as exc:
            raise kmeans.DataError(f"line {no}: invalid JSON ({exc})") from None
        rows.append(_instance_features(inst, f"line {no}"))
    if not rows:
        return np.zeros((0, 0))
    return _rows(rows)
