"""Which requests the ui answers at all: its own Host and Origin only (DNS rebinding and forged forms).

A web page on `attacker.example` can make the victim's browser send requests to the ui in two ways:
- DNS rebinding: the attacker's name first resolves to their server, then to 127.0.0.1, so the page's
  scripts reach the ui as "same origin" and can read the answers. The browser still sends the
  attacker's name in the Host header, so the ui admits only the exact names it is reached by: the address
  and port it listens on, and the loopback names (`localhost`, `127.0.0.1`, `[::1]`) with that port when
  it listens on a loopback address. A prefix test (`127.`) is not enough: `127.attacker.example` and
  `127.0.0.1.nip.io` are DNS names an attacker controls.
- A plain cross-site form POST (no preflight for multipart): the browser marks it with an Origin of the
  other site (or `Sec-Fetch-Site: cross-site`), which must be the ui's own origin when present.

A server deliberately bound to all interfaces (`--host 0.0.0.0`, warned about) also accepts any IP
address literal with its port, and the machine's own host names: an address literal cannot be rebound.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def host_literal(address: str) -> str:
    """An address as it appears in a Host header: IPv6 in brackets, names lower-case."""
    address = address.strip("[]").lower()
    return f"[{address}]" if ":" in address else address


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_unspecified
    except ValueError:
        return False


def _with_port(names: set[str], port: int) -> frozenset[str]:
    """`name:port` for every name, and the bare name too for port 80 (browsers leave the default out)."""
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts |= names
    return frozenset(hosts)


class HostGuard:
    """The Host and Origin a request may carry, for a server listening on `address`:`port`."""

    def __init__(self, address: str, port: int) -> None:
        self.port = port
        self.any_ip = _is_wildcard(address)
        names = {host_literal(address)}
        if _is_loopback(address) or self.any_ip:
            names |= set(LOOPBACK_NAMES)
        if not _is_loopback(address):  # reachable from other machines: they use its name
            names.add(host_literal(socket.gethostname()))  # no DNS look-up: it could hang
        self.hosts = _with_port(names, port)

    def admits_host(self, host: str) -> bool:
        """Whether a Host header names this server (exactly; case-insensitive as DNS names are)."""
        host = host.strip().lower()
        if host in self.hosts:
            return True
        if not self.any_ip:
            return False
        name, port = _split_host(host)
        if port != self.port and not (port is None and self.port == 80):
            return False
        try:
            ipaddress.ip_address(name.strip("[]") if name.startswith("[") else name)
        except ValueError:
            return False
        return name.startswith("[") or ":" not in name  # an IPv6 literal must be bracketed

    def refusal(self, method: str, headers: Mapping[str, str]) -> str | None:
        """Why a request is refused as coming from another site, or None when it may be answered."""
        host = headers.get("host", "")
        if not self.admits_host(host):
            return (f"request for host {host[:200]!r} refused: this rns ui answers only to its own address "
                    f"(e.g. http://127.0.0.1:{self.port}/)")
        origin = headers.get("origin")
        if origin is not None and origin.strip().lower() != f"http://{host.strip().lower()}":
            return (f"request from {origin[:200]} refused: only the rns ui page itself may use this "
                    "server")
        if method not in ("GET", "HEAD", "OPTIONS") and headers.get("sec-fetch-site") == "cross-site":
            return "cross-site request refused: only the rns ui page itself may change the memory"
        return None


def _split_host(host: str) -> tuple[str, int | None]:
    """A Host header's name and port (None when absent or not a number)."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name += "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, port_text = host.split(":")
    else:
        name, port_text = host, ""
    return name, int(port_text) if port_text.isdigit() else None
