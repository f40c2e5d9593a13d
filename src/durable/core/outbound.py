"""Where the engine may send invokes: the DURABLE_APP_URL_ALLOW list and the engine's own origin.

Pure rules, no I/O. An allow-list entry is a host name (`app.example.com`), a suffix pattern
(`*.example.com`, which matches sub-domains only), an IP address or a CIDR. Names match a URL's host as
written (lower-cased, without a trailing dot); IP and CIDR entries match a URL whose host is an IP
literal. No DNS is consulted at sync: what a name resolves to is checked again at every invoke, where
it counts (worker/invoke.py), because DNS can change after a sync.

The engine never invokes its own API: a URL on its port at a loopback, unspecified or bound address, or
at the Host the engine was reached on, would let a tenant make signed-in calls to the admin API
(cancel another workspace's run) with the engine's own network position.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_VARIABLE = "DURABLE_APP_URL_ALLOW"


@dataclass(frozen=True)
class AllowList:
    """The parsed DURABLE_APP_URL_ALLOW: empty parts never match."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".example.com" for "*.example.com"
    networks: tuple[Network, ...] = ()

    def allows(self, host: str) -> bool:
        """Whether a URL host (as `urlsplit(url).hostname` gives it) is on the list."""
        name = normal_host(host)
        address = as_address(name)
        if address is not None:
            return any(address in network for network in self.networks)
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)


def parse_allow(raw: str) -> AllowList | None:
    """Parse the comma-separated list; None when it is empty (any host). ValueError names a bad entry."""
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[Network] = []
    for item in raw.split(","):
        entry = item.strip().lower()
        if not entry:
            continue
        if entry.startswith("*."):
            suffix = normal_host(entry[1:])
            if not _is_name(suffix[1:]):
                raise ValueError(_bad_entry(entry))
            suffixes.append(suffix)
        elif "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                raise ValueError(_bad_entry(entry)) from None
        elif (address := as_address(normal_host(entry))) is not None:
            networks.append(ipaddress.ip_network(address))
        elif _is_name(normal_host(entry)):
            names.add(normal_host(entry))
        else:
            raise ValueError(_bad_entry(entry))
    if not (names or suffixes or networks):
        return None
    return AllowList(frozenset(names), tuple(suffixes), tuple(networks))


def _bad_entry(entry: str) -> str:
    return (
        f"{ALLOW_VARIABLE} entry {entry!r} is invalid: expected comma-separated host names, "
        "*.suffix patterns, IP addresses or CIDRs (app.example.com, *.internal, 10.0.0.5, 10.0.0.0/8)"
    )


def _is_name(name: str) -> bool:
    labels = name.split(".")
    return (
        bool(name)
        and len(name) <= 253
        and all(
            0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() and label.isascii()
            for label in labels
        )
    )


def normal_host(host: str) -> str:
    """A host as compared here: lower case, no IPv6 brackets, no trailing dot."""
    return host.strip().strip("[]").lower().rstrip(".")


def as_address(host: str) -> Address | None:
    """The IP address a host literal names, or None for a name.

    Besides the usual forms, the legacy IPv4 spellings a resolver would accept (`2130706433`,
    `0x7f.1`, `127.1`) are read as the address they mean, so they cannot slip past a check.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not host or not all(c in "0123456789abcdefx." for c in host) or not host[0].isdigit():
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def url_port(url: str) -> int:
    """The port a URL reaches: its explicit one, else its scheme's default."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def is_own_address(address: Address, port: int, own_port: int, is_local: Callable[[Address], bool]) -> bool:
    """Whether (address, port) reaches this engine: its port on loopback, `0.0.0.0`/`::` (which
    connect to this machine) or any address of this machine's interfaces (`is_local`)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if port != own_port:
        return False
    return address.is_loopback or address.is_unspecified or is_local(address)


def own_origin(
    url: str,
    *,
    bound_host: str,
    own_port: int,
    reached_as: str | None = None,
    is_local: Callable[[Address], bool] = lambda _address: False,
) -> str | None:
    """The engine origin `url` points at (for the message), or None when it points elsewhere.

    `reached_as` is the Host header the engine was reached on; when it names no port (a proxy on 80
    or 443 in front), both default ports count as the engine's.
    """
    parts = urlsplit(url)
    host = normal_host(parts.hostname or "")
    port = url_port(url)
    if reached_as:
        reached = urlsplit("//" + reached_as.strip())
        try:
            reached_port = reached.port
        except ValueError:
            reached_port = None
        if normal_host(reached.hostname or "") == host and (
            port == reached_port if reached_port else port in (80, 443)
        ):
            return reached_as.strip()
    if port != own_port:
        return None
    bound = normal_host(bound_host)
    address = as_address(host)
    if host == "localhost" or host.endswith(".localhost") or host == bound:
        return f"{bound_host}:{own_port}"
    if address is not None and (
        is_own_address(address, port, own_port, is_local) or address == as_address(bound)
    ):
        return f"{bound_host}:{own_port}"
    return None


def refusal(url: str, allow: AllowList | None, own: str | None) -> str | None:
    """The one-line reason a sync (or an invoke) may not use `url`, or None when it may."""
    if own is not None:
        return (
            f"url: {_shown(url)} points at this engine's own API ({own}): the engine never invokes "
            "itself; sync the URL your app serves its functions on"
        )
    if allow is not None and not allow.allows(urlsplit(url).hostname or ""):
        return (
            f"url: {_shown(url)} is not allowed by {ALLOW_VARIABLE}: expected a host on that list "
            "(ask the engine's operator to add it)"
        )
    return None


def _shown(url: str) -> str:
    """The URL for a message, whole unless it is very long (sync URLs have no whitespace or NUL)."""
    return repr(url if len(url) <= 160 else url[:160] + "…")
