"""The Host/Origin rule of the dashboards: the served address, its names, and the proxy allow-list."""

from __future__ import annotations

import socket

import pytest

from imaging_lib.dashboard.hosts import AllowedHosts, host_name, is_loopback, parse_host_list

LOOPBACK = AllowedHosts.for_address("127.0.0.1", ["dash.example.org"])


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_is_loopback(ip, loopback):
    assert is_loopback(ip) is loopback


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8866", "127.0.0.1", "localhost:8866", "LOCALHOST", "dash.example.org", "dash.example.org:443"]
)
def test_a_loopback_server_answers_to_its_address_localhost_and_the_allow_list(host):
    assert LOOPBACK.refusal(host, None) is None


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:8866",  # DNS rebinding: the attacker's name resolving to 127.0.0.1
        "127.0.0.1.attacker.example",
        "localhost.attacker.example:8866",
        "10.0.0.5:8866",
        "[::1]:8866",  # another loopback address than the one served
        "0177.0.0.1:8866",
        "",
        None,
    ],
)
def test_a_loopback_server_refuses_other_hosts(host):
    assert LOOPBACK.refusal(host, None) is not None


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8866", "http://127.0.0.1:8866"),
        ("localhost:8866", "http://localhost:8866"),
        ("127.0.0.1:8866", "https://dash.example.org"),  # a proxy that rewrites Host
        ("dash.example.org", "https://dash.example.org"),
    ],
)
def test_same_origin_and_proxy_origins_are_answered(host, origin):
    assert LOOPBACK.refusal(host, origin) is None


@pytest.mark.parametrize(
    "origin",
    [
        "http://attacker.example",
        "http://127.0.0.1:9999",  # another local service is another origin
        "http://localhost:8866",  # same machine, other name: another origin for the browser
        "null",
        "file://",
        "ws://127.0.0.1:8866",
    ],
)
def test_foreign_origins_are_refused(origin):
    assert "another site" in LOOPBACK.refusal("127.0.0.1:8866", origin)


def test_a_wildcard_server_answers_to_this_machines_addresses_and_name_only():
    hosts = AllowedHosts.for_address("0.0.0.0")
    assert hosts.refusal("127.0.0.1:8866", None) is None
    assert hosts.refusal(f"{socket.gethostname()}:8866", None) is None
    assert hosts.refusal("attacker.example:8866", None) is not None
    assert hosts.refusal("192.0.2.77:8866", None) is not None  # TEST-NET: not an address of this machine


def test_a_lan_server_answers_to_its_address():
    hosts = AllowedHosts.for_address("192.0.2.10")
    assert hosts.refusal("192.0.2.10:8866", None) is None
    assert hosts.refusal("127.0.0.1:8866", None) is not None


def test_host_names_and_lists_are_normalised():
    assert host_name("[::1]:8866") == "::1" and host_name("Dash.Example.org:443") == "dash.example.org"
    assert parse_host_list(" a.example, B.example:443  c.example ") == ("a.example", "b.example", "c.example")
    assert parse_host_list(None) == ()
