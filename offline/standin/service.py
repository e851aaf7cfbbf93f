"""``SageMakerStandIn``: the SageMaker and SageMaker Runtime backends, answering botocore once installed.

A request travels ``hook.py`` (botocore's before-send event) -> ``responses.py`` (the wire) -> the backend's
method for the operation (``backend.py``, ``runtime.py``), which checks it (``validators.py``), acts on the
resources (``models.py``) and starts background work (``training.py``, ``hosting.py``).
"""

from __future__ import annotations

from . import hook, responses
from .backend import SageMakerBackend
from .faults import Faults, Timing
from .runtime import SageMakerRuntimeBackend
from .search import Range, Searcher

__all__ = ["SageMakerStandIn", "Faults", "Timing"]

_Range, _Searcher = Range, Searcher  # the search's names here before it had a module of its own


class SageMakerStandIn(SageMakerBackend):
    """Answers every ``sagemaker`` and ``sagemaker-runtime`` request once ``install()``-ed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime = SageMakerRuntimeBackend(self)

    def install(self) -> SageMakerStandIn:
        hook.install(self)
        self.halted.clear()
        return self

    def uninstall(self) -> None:
        """Stop answering, stop and join the background threads (idempotent)."""
        hook.uninstall(self)
        self.shutdown()

    @property
    def installed(self) -> bool:
        return hook.active() is self

    def __enter__(self) -> SageMakerStandIn:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def handle_http(self, service: str, operation: str, request):
        """Build the HTTP response SageMaker would send for a prepared botocore request."""
        return responses.respond(self, self.runtime, service, operation, request)
