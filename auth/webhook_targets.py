"""Where an alert webhook may connect: judged by address, never by how the host is spelled.

The hub POSTs alerts to a URL a product's secret-key holder chose, so that URL must not reach
inside the hub's own network (loopback, private ranges, link-local such as a cloud metadata
endpoint). Spellings do not matter: `127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`, `0`,
`[::ffff:127.0.0.1]` and a DNS name that resolves to 127.0.0.1 all name the same machine. So
a literal host is parsed the way the C resolver would (`inet_aton`), a name is resolved once
(asynchronously) and *every* answer must be public, and the caller then connects to the checked
address itself (`Target.addresses`), so DNS cannot answer differently between check and connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses that name resolves to, in the resolver's order.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# IPv6 ranges that carry an IPv4 address in their low 32 bits: IPv4-compatible (::/96, long
# deprecated), IPv4-translated (::ffff:0:0:0/96, SIIT) and the NAT64 well-known prefix. 6to4,
# Teredo and IPv4-mapped have accessors.
_LOW_32_BITS_IPV4 = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
)
# Never public, whatever the running Python's `is_global` knows: the NAT64 local-use prefix
# (RFC 8215, which translates to any IPv4 address, internal ones included) and the
# deprecated site-local range.
_INTERNAL_IPV6 = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"))
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
# One DNS label once IDNA-encoded: letters, digits, `-` inside, `_` (SRV-style names) allowed.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class BlockedTarget(ValueError):
    """The webhook target is (or resolves to) an address inside the hub's network."""


@dataclass(frozen=True)
class Target:
    """A webhook URL with the checked addresses to connect to (in order)."""

    host: str  # the name from the URL (for the Host header, TLS SNI and certificate check)
    port: int
    addresses: list[Address]


def check_host_and_port(url: str) -> None:
    """ValueError unless the URL's host is a DNS name or an IP literal and its port (if any)
    is 1–65535. `urlsplit` takes any characters as a host (`exa mple.com`,
    `%31%32%37.0.0.1`) and `:0` as a port: a URL an alert could never reach must not be saved."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("not a valid port") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("not a valid port")
    host = parts.hostname or ""
    if "[" in parts.netloc:  # an IPv6 literal, perhaps with a zone (`fe80::1%25eth0`)
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError("not a valid IPv6 address") from None
        return
    try:  # the name as the resolver would send it: IDNA folds `１２７。０。０。１` to ASCII
        name = _as_resolved(host).encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("not a valid host name") from None
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("not a valid host name")


def literal_address(host: str) -> Address | None:
    """The address `host` spells by itself, in any form the C resolver accepts, or None for a
    DNS name. `inet_aton` reads `127.1`, `2130706433`, `0x7f000001` and `0177.0.0.1` alike."""
    host = _as_resolved(host.strip("[]"))
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        # An IPv6 literal with a zone (`fe80::1%25eth0`): link-local whatever the zone says.
        try:
            return ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except (OSError, ValueError):
        return None


def _as_resolved(host: str) -> str:
    """The host as getaddrinfo reads it: IDNA folds full-width digits (NFKC) and treats the
    ideographic and full-width full stops as dots, so `１２７。０。０。１` is 127.0.0.1."""
    host = unicodedata.normalize("NFKC", host)
    return host.translate(_IDNA_DOTS)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches by translation or tunnelling."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _LOW_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: Address) -> bool:
    """True when the address is globally routable unicast, and so is every IPv4 address it
    embeds (a NAT64 or 6to4 address of 127.0.0.1 is as internal as 127.0.0.1)."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _INTERNAL_IPV6):
            return False
        return all(is_public(inner) for inner in _embedded_ipv4(address))
    return True


def is_local_name(host: str) -> bool:
    """`localhost` and its subdomains (RFC 6761) always mean this machine."""
    host = _as_resolved(host).lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def check_literal(url: str) -> None:
    """Refuse a URL whose host names an internal address by itself (any spelling) or is
    `localhost`; a DNS name passes here and is judged by `resolve_target` when used."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if is_local_name(host) or (address is not None and not is_public(address)):
        raise BlockedTarget(f"{host} is inside the hub's network")


async def system_resolve(host: str, port: int) -> list[str]:
    """A/AAAA answers from the system resolver (in a thread: getaddrinfo blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_target(
    url: str, *, resolver: Resolver = system_resolve, allow_internal: bool = False
) -> Target:
    """The URL's host with the addresses to connect to, each one checked.

    A literal host is not resolved at all. A name is resolved exactly once; unless
    `allow_internal`, every answer must be public (one internal answer refuses the whole name:
    a client picking among them might pick it). Raises `BlockedTarget`, or `OSError` when the
    name does not resolve.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = literal_address(host)
    if literal is not None:
        answers: list[Address] = [literal]
    else:
        if not allow_internal and is_local_name(host):
            raise BlockedTarget(f"{host} is inside the hub's network")
        answers = []
        for raw in await resolver(host, port):
            address = literal_address(raw)
            if address is not None and address not in answers:
                answers.append(address)
        if not answers:
            raise OSError(f"{host} has no address")
    if not allow_internal:
        for address in answers:
            if not is_public(address):
                raise BlockedTarget(f"{host} resolves inside the hub's network")
    return Target(host=host, port=port, addresses=answers)
