"""core/outbound.py: the DURABLE_APP_URL_ALLOW grammar and the engine's-own-origin rule, without I/O."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from durable.config import load
from durable.core.outbound import as_address, own_origin, parse_allow, refusal
from durable.errors import ConfigError


def test_an_empty_list_allows_any_host() -> None:
    assert parse_allow("") is None
    assert parse_allow(" , ,") is None
    assert load({}).app_url_allow is None
    assert refusal("http://anything.example/x", None, None) is None


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("app.example.com", True),
        ("APP.EXAMPLE.COM.", True),
        ("other.example.com", False),
        ("a.b.internal", True),
        ("internal", False),
        ("evilinternal", False),
        ("10.1.2.3", True),
        ("11.1.2.3", False),
        ("192.0.2.7", True),
        ("192.0.2.8", False),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),  # an IPv4-mapped address is the IPv4 one
        ("167772161", True),  # 10.0.0.1 in the legacy one-number spelling
    ],
)
def test_entries_match_names_suffixes_ips_and_cidrs(host: str, allowed: bool) -> None:
    allow = parse_allow("app.example.com, *.internal, 10.0.0.0/8, 192.0.2.7, [fd00::/64]")
    assert allow is not None
    assert allow.allows(host) is allowed


@pytest.mark.parametrize(
    "entry", ["http://app.example.com", "app.example.com:8080", "10.0.0.0/99", "*.", "a b"]
)
def test_a_bad_entry_stops_start_up_naming_it(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"DURABLE_APP_URL_ALLOW": f"ok.example.com,{entry}"})
    message = caught.value.message
    assert message.startswith("DURABLE_APP_URL_ALLOW entry") and "expected" in message, message


def test_legacy_ipv4_spellings_are_read_as_addresses() -> None:
    assert as_address("2130706433") == ip_address("127.0.0.1")
    assert as_address("0x7f.1") == ip_address("127.0.0.1")
    assert as_address("127.1") == ip_address("127.0.0.1")
    assert as_address("example.com") is None
    assert as_address("1e100.net") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3030/api/runs/r/cancel",
        "http://localhost:3030/",
        "http://a.localhost:3030/",
        "http://[::1]:3030/",
        "http://0.0.0.0:3030/",
        "http://127.0.0.2:3030/",
        "http://durable.example.com/api",  # the Host it was reached on, without a port: 80 and 443
        "https://durable.example.com/api",
        "http://10.9.9.9:3030/",  # a local address (is_local says so)
        "http://engine.lan:3030/",  # the bound host name
    ],
)
def test_urls_on_the_engines_own_origin(url: str) -> None:
    own = own_origin(
        url,
        bound_host="engine.lan",
        own_port=3030,
        reached_as="durable.example.com",
        is_local=lambda address: address == ip_address("10.9.9.9"),
    )
    assert own is not None
    message = refusal(url, None, own)
    assert message is not None and repr(url) in message and "own API" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000/api/durable",  # an app on this machine, another port
        "http://localhost:4000/",
        "http://durable.example.com:8443/api",  # reached without a port: only 80/443 are the engine's
        "http://10.9.9.10:3030/",  # not a local address
        "http://app.example.com:3030/",
    ],
)
def test_urls_elsewhere_are_not_the_engine(url: str) -> None:
    own = own_origin(
        url,
        bound_host="engine.lan",
        own_port=3030,
        reached_as="durable.example.com",
        is_local=lambda address: address == ip_address("10.9.9.9"),
    )
    assert own is None


def test_a_host_with_a_port_counts_only_on_that_port() -> None:
    def own(url: str) -> str | None:
        return own_origin(url, bound_host="127.0.0.1", own_port=3030, reached_as="proxy.example:8080")

    assert own("http://proxy.example:8080/api/runs/x/cancel") == "proxy.example:8080"
    assert own("https://proxy.example/api") is None
