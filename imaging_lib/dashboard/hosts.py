"""Which Host and Origin headers the dashboards answer to: the defence against DNS rebinding.

A page on any web site can make the visitor's browser send requests to a name the
attacker controls but that resolves to the dashboard's address (DNS rebinding). Those
requests carry the attacker's name in their ``Host`` header, and the browser treats the
answers as same-origin for the attacker's page. Cross-site requests (and websockets)
carry the other site in their ``Origin`` header. So a request is answered only when

* its ``Host`` names an address the server listens on: the bound IP, ``localhost`` for
  a loopback address, this machine's addresses and host name for a wildcard or LAN
  address, or a name on the allow-list (``IMAGING_DASHBOARD_ALLOWED_HOSTS``, for a
  reverse proxy), and
* its ``Origin``, when there is one, is the same origin as the ``Host`` (scheme aside),
  or a name on the allow-list.

The port of ``Host`` is not compared: a rebinding attack reaches the real port anyway,
and a reverse proxy may serve on another one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["AllowedHosts", "host_name", "is_loopback", "parse_host_list"]

_WILDCARDS = ("", "0.0.0.0", "::")


def is_loopback(ip: str) -> bool:
    """Return whether ``ip`` only accepts connections from this machine.

    Parameters
    ----------
    ip : str
        An IPv4/IPv6 address or ``"localhost"``; ``""`` and ``"0.0.0.0"`` mean every
        interface and are not loopback.
    """
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(netloc: str) -> str:
    """Return the lower-case host of ``host[:port]`` (IPv6 without its brackets).

    Examples
    --------
    >>> host_name("[::1]:8866"), host_name("Example.org:443"), host_name("127.0.0.1")
    ('::1', 'example.org', '127.0.0.1')
    """
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    if netloc.count(":") == 1:
        return netloc.split(":", 1)[0]
    return netloc


def parse_host_list(value: str | None) -> tuple[str, ...]:
    """Split a comma- or space-separated list of host names (the allow-list setting)."""
    return tuple(host_name(part) for part in (value or "").replace(",", " ").split() if part)


def _canonical_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _machine_names() -> set[str]:
    return {socket.gethostname().lower(), socket.getfqdn().lower()}


def _interface_addresses() -> set[str]:
    import psutil

    return {
        _canonical_ip(address.address.split("%", 1)[0])
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


@dataclass(frozen=True)
class AllowedHosts:
    """The host names a dashboard answers to, and the proxy names it also accepts as Origin.

    Attributes
    ----------
    names : frozenset of str
        Lower-case host names and canonical IP addresses (IPv6 without brackets).
    proxies : frozenset of str
        Names from the allow-list; they are also accepted as the host of an ``Origin``.
    """

    names: frozenset[str]
    proxies: frozenset[str] = frozenset()

    @classmethod
    def for_address(cls, ip: str, allowed: Iterable[str] = ()) -> AllowedHosts:
        """Return the hosts of a server bound to ``ip``, plus the ``allowed`` names.

        Parameters
        ----------
        ip : str
            The bound address: loopback, a wildcard (``0.0.0.0``, ``::``, ``""``), or one
            of this machine's addresses.
        allowed : iterable of str
            Extra names (a reverse proxy's public name).
        """
        bound = ip.strip("[]").lower()
        if bound == "localhost":
            names = {"localhost", "127.0.0.1", "::1"}
        elif is_loopback(bound):
            names = {"localhost", _canonical_ip(bound)}
        elif bound in _WILDCARDS:
            names = {"localhost", *_interface_addresses(), *_machine_names()}
        else:
            names = {_canonical_ip(bound), *_machine_names()}
        proxies = frozenset(host_name(name) for name in allowed if name.strip())
        return cls(frozenset(names) | proxies, proxies)

    def refusal(self, host: str | None, origin: str | None) -> str | None:
        """Return why a request with these headers is refused, or ``None`` to answer it.

        Parameters
        ----------
        host : str or None
            The ``Host`` header.
        origin : str or None
            The ``Origin`` header (absent on same-origin navigations and most scripts).
        """
        if not host:
            return "the request has no Host header"
        name = host_name(host)
        if _canonical_ip(name) not in self.names:
            return (
                f"this dashboard does not answer to the host name {name[:100]!r}; "
                "add it to IMAGING_DASHBOARD_ALLOWED_HOSTS to serve behind a proxy"
            )
        if origin is None:
            return None
        parts = urlsplit(origin.strip().lower())
        same_site = parts.netloc == host.strip().lower() or host_name(parts.netloc) in self.proxies
        if parts.scheme in ("http", "https") and parts.netloc and same_site:
            return None
        return f"requests from another site ({origin[:100]!r}) are refused"
