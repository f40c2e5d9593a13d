"""Durable SDK for Python: define durable functions, serve them to the engine, sync and send events.

Standard library only. See ``sdks/python/README.md`` for a walk-through.
"""

from ._client import Client
from ._errors import DurableError, InvokeError, NonRetryableError, SignatureError, StepInterrupt
from ._options import CancelOn, Checkpoint, Function, Singleton, function
from ._serve import serve, serve_wsgi
from ._signing import sign, sign_v2, verify, verify_v2
from ._step import Step
from ._typed import AsyncStep, Event, SyncStep
from ._wire import SentEvent

__version__ = "0.1.0"

__all__ = [
    "AsyncStep",
    "CancelOn",
    "Checkpoint",
    "Client",
    "DurableError",
    "Event",
    "Function",
    "InvokeError",
    "NonRetryableError",
    "SentEvent",
    "SignatureError",
    "Singleton",
    "Step",
    "StepInterrupt",
    "SyncStep",
    "__version__",
    "function",
    "serve",
    "serve_wsgi",
    "sign",
    "sign_v2",
    "verify",
    "verify_v2",
]
