"""Patch: MiniStack loads botocore service models from one botocore session, not a new session per service.

MiniStack 1.5.33's `core/responses.py` `_service_model(service)` (cached per service) builds a fresh
`botocore.session.get_session()` for each service it first sees, only to call `get_service_model` on it.
A new session has a new data loader, so each first call of a service re-reads botocore's endpoint and
model index files: ~40 ms of CPU per service (more on a loaded machine), paid while `make up` creates its
resources (every response's Content-Type goes through `_service_model`). One session, created on the first
call, loads each service model from the same data files into the same `ServiceModel`; only the loader's
cache is shared. The session is used for nothing else there, so no answer changes. docs/emulator-patches.md.

Runs in the emulator's interpreter: standard library and MiniStack only.
"""

from __future__ import annotations

import functools
import threading
from typing import Any


def apply() -> None:
    from ministack.core import responses

    lock = threading.Lock()
    sessions: list[Any] = []

    @functools.cache
    def _service_model(service: str) -> Any:
        """The botocore service model for a ministack service name, or None (MiniStack's, one session)."""
        try:
            import botocore.session
        except ImportError:
            return None
        name = responses._BOTOCORE_NAME.get(service, service)
        try:
            # A botocore session is not documented thread-safe; the lock costs nothing once models are cached.
            with lock:
                if not sessions:
                    sessions.append(botocore.session.get_session())
                return sessions[0].get_service_model(name)
        except Exception:
            return None

    # Modules that import it by name (services/stepfunctions.py) load lazily, after this runs.
    responses._service_model = _service_model
