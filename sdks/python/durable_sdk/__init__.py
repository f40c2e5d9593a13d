"""Durable SDK for Python: define durable functions, serve them to the engine, sync and send events.

Standard library only. See ``sdks/python/README.md`` for a walk-through.
"""

from ._client import Client
from ._errors import DurableError, NonRetryableError, StepInterrupt
from ._options import Function, function
from ._serve import serve, serve_wsgi
from ._signing import sign, verify
from ._step import Step

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DurableError",
    "Function",
    "NonRetryableError",
    "Step",
    "StepInterrupt",
    "__version__",
    "function",
    "serve",
    "serve_wsgi",
    "sign",
    "verify",
]
