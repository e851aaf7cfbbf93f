"""The stand-in's state: the resources of one account and region, the lock that guards them, the threads working
on them and the AWS clients the stand-in itself uses. The operations (``backend.py``), the background work
(``training.py``, ``hosting.py``) and SageMaker Runtime (``runtime.py``) all act on one ``State``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import boto3
import botocore.config

from .faults import Faults, Timing
from .models import Endpoint, EndpointConfig, Model, TrainingJob, TuningJob, arn

_SHARED_SESSION: boto3.session.Session | None = None
_SHARED_SESSION_LOCK = threading.Lock()


class State:
    """Every SageMaker resource of one account and region, and the threads working on them."""

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
        self.lock = threading.RLock()  # guards every resource below and every attribute of them
        self.halted = threading.Event()  # set: background work stops as soon as it can
        self.tuning_jobs: dict[str, TuningJob] = {}
        self.training_jobs: dict[str, TrainingJob] = {}
        self.models: dict[str, Model] = {}
        self.endpoint_configs: dict[str, EndpointConfig] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.tags: dict[str, list[dict[str, str]]] = {}  # arn -> tags, for every live resource
        self._threads: list[threading.Thread] = []
        self._local = threading.local()

    # -- background work ---------------------------------------------------------------------------

    def spawn(self, target: Callable, *args, name: str = "standin") -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self.lock:  # started under the lock: shutdown() never joins a thread that has not started
            self._threads = [x for x in self._threads if x.is_alive()]
            t.start()
            self._threads.append(t)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless halted meanwhile; True when the sleep was interrupted."""
        return self.halted.wait(max(0.0, seconds)) if seconds > 0 else self.halted.is_set()

    def shutdown(self, timeout: float = 30) -> None:
        """Halt the background work, stop every training job and join the threads."""
        self.halted.set()
        with self.lock:
            for job in self.training_jobs.values():
                job.stop.set()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            self._threads = [t for t in self._threads if t.is_alive()]

    # -- the AWS clients of the stand-in itself (moto answers them in tests) -------------------------

    def client(self, service: str):
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

    # -- names ---------------------------------------------------------------------------------------

    def arn(self, kind: str, name: str) -> str:
        return arn(self.region, self.account_id, kind, name)

    # -- the store (callers hold the lock) -----------------------------------------------------------

    def add(self, store: dict, resource, tags: list[dict[str, str]]) -> None:
        """Keep a new resource (by its lower-cased name, as SageMaker's names are) and its tags."""
        store[resource.name.lower()] = resource
        self.tags[resource.arn] = list(tags)

    def forget(self, store: dict, resource) -> None:
        del store[resource.name.lower()]
        self.tags.pop(resource.arn, None)
