"""The sync-time check of an app's URL (DURABLE_APP_URL_ALLOW, the engine's own origin), and the one
question about this machine that the pure rules in core/outbound.py cannot answer.

worker/invoke.py checks the same rules again at every invoke, on the addresses the URL resolves to.
"""

from __future__ import annotations

import socket

from durable.config import Settings
from durable.core.outbound import Address, own_origin, refusal
from durable.errors import InvalidInput


def is_local_address(address: Address) -> bool:
    """Whether `address` is one of this machine's own: only then can a socket bind it."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def check_sync_url(url: str, settings: Settings, reached_as: str | None) -> None:
    """Refuse (400, naming the URL and why) a sync URL on this engine's own origin or off the list.

    `reached_as` is the request's Host header: a URL naming the host and port the engine was reached
    on points at the engine even when that name is a proxy's.
    """
    own = own_origin(
        url,
        bound_host=settings.host,
        own_port=settings.port,
        reached_as=reached_as,
        is_local=is_local_address,
    )
    problem = refusal(url, settings.app_url_allow, own)
    if problem is not None:
        raise InvalidInput(problem)
