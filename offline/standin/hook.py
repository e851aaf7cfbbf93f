"""How the stand-in plugs into botocore.

botocore emits ``before-send.<service-id>.<Operation>`` just before it would send an HTTP request; a
handler returning an ``AWSResponse`` replaces the network round trip (serialisation, signing, retries,
response parsing and error mapping all still run, so a client cannot tell the difference).

Ordering: ``HierarchicalEmitter`` calls handlers from the most specific event name to the least
specific (``_PrefixTrie.prefix_search``), so a handler registered for ``before-send.sagemaker`` runs
before moto's generic ``before-send`` handler. But ``Endpoint._do_get_response`` uses ``emit`` (not
``emit_until_response``): every handler still runs and the first non-None answer wins. So once the
stand-in has answered it re-points ``request.url`` at a host no moto backend claims; moto's handler
then returns None instead of also acting on the request (and e.g. raising NotImplementedError for
``UpdateEndpoint``). The same marker makes a handler registered twice on one emitter harmless.

Reach: ``BUILTIN_HANDLERS`` for sessions created after ``install()``; for sessions and clients that
already exist (``boto3.DEFAULT_SESSION``, and any other live botocore session or SageMaker client)
``install()`` registers directly on their emitters. The handler does nothing when no stand-in is
installed, so registrations left on old clients are inert.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any, Protocol

import botocore.client
import botocore.handlers
import botocore.session

SERVICES = ("sagemaker", "sagemaker-runtime")
EVENTS = tuple(f"before-send.{s}" for s in SERVICES)
ANSWERED_HOST = "sagemaker-standin.invalid"
_UNIQUE = "offline-standin-{}"


class Answerer(Protocol):
    """What the hook hands a request to (``SageMakerStandIn``): an ``AWSResponse``, or None to let it through."""

    def handle_http(self, service: str, operation: str, request: Any) -> Any: ...


_lock = threading.RLock()
_active: Answerer | None = None
_builtin_specs: list[tuple] = []
_registered: list[weakref.ref] = []  # emitters/sessions we registered on directly


def _handler(request=None, event_name: str = "", **_kwargs):
    standin = _active
    if standin is None or request is None:
        return None
    if ANSWERED_HOST in (request.url or ""):
        return None  # already answered by another registration of this handler
    parts = event_name.split(".")
    if len(parts) < 3 or parts[1] not in SERVICES:
        return None
    service, operation = parts[1], parts[2]
    url = request.url
    response = standin.handle_http(service, operation, request)
    if response is not None:
        # Keep moto's generic before-send handler (which also runs) from acting on this request.
        request.url = f"https://{ANSWERED_HOST}/{service}/{operation}"
        response.url = url
    return response


def _register_on(emitter_owner) -> None:
    """Register on an event emitter (a session's, or a client's ``meta.events``), once."""
    for event in EVENTS:
        emitter_owner.register_first(event, _handler, unique_id=_UNIQUE.format(event))
    _registered.append(weakref.ref(emitter_owner))


def _unregister_on(emitter_owner) -> None:
    for event in EVENTS:
        try:
            emitter_owner.unregister(event, _handler, unique_id=_UNIQUE.format(event))
        except Exception:  # pragma: no cover - emitter gone or never registered
            pass


def _existing_targets():
    """Live botocore sessions and SageMaker / SageMaker Runtime clients."""
    targets = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, botocore.session.Session):
                targets.append(obj.get_component("event_emitter"))
            elif isinstance(obj, botocore.client.BaseClient):
                if obj.meta.service_model.service_name in SERVICES:
                    targets.append(obj.meta.events)
        except Exception:  # pragma: no cover - half-built objects
            continue
    return targets


def install(standin: Answerer) -> None:
    global _active
    with _lock:
        if _active is not None and _active is not standin:
            raise RuntimeError("another SageMakerStandIn is installed; uninstall() it before installing a new one")
        if _active is standin:
            return
        _active = standin
        if not _builtin_specs:
            for event in EVENTS:
                spec = (event, _handler, botocore.handlers.REGISTER_FIRST)
                botocore.handlers.BUILTIN_HANDLERS.append(spec)
                _builtin_specs.append(spec)
        for target in _existing_targets():
            _register_on(target)


def uninstall(standin: Answerer) -> None:
    global _active
    with _lock:
        if _active is not standin:
            return
        _active = None
        for spec in _builtin_specs:
            try:
                botocore.handlers.BUILTIN_HANDLERS.remove(spec)
            except ValueError:  # pragma: no cover
                pass
        _builtin_specs.clear()
        for ref in _registered:
            target = ref()
            if target is not None:
                _unregister_on(target)
        _registered.clear()


def active() -> Answerer | None:
    return _active
