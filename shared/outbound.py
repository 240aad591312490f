"""Checking URLs that users give us before the platform connects to them.

Users register external OpenAI-compatible providers by base URL, and the platform then sends
requests there from inside its own network. Without a check that is a server-side request
forgery hole: `http://169.254.169.254/latest/...` reads cloud credentials, `http://10.0.0.5`
reaches internal services, `http://0x7f.1` is loopback in disguise.

`check_outbound_url` accepts only http(s) URLs without credentials whose host resolves
exclusively to public addresses. An address is refused when it is unspecified, loopback,
link-local (169.254.0.0/16 including the metadata endpoint, fe80::/10), multicast, private
(RFC 1918, fc00::/7, ...), shared CGNAT space (100.64.0.0/10), reserved or otherwise not
globally routable. IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
`64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address inside. Numeric tricks
(`0x7f.1`, `2130706433`, `017700000001`) are read the way the C resolver reads them, so the
check sees the address a client would connect to.

An allow-list (from settings, for tests and for deliberately internal providers) admits
addresses the rules would refuse. Entries are a hostname (`localhost`), `host:port`
(`localhost:8080`, `127.0.0.1:8080`, `[::1]:8080`), an IP (`127.0.0.1`) or a CIDR
(`10.0.0.0/8`). A hostname entry admits whatever that name resolves to; an IP or CIDR entry
admits matching addresses whatever the name.

DNS rebinding: a name's answer can change between the check and the connection (a TTL-0
record answering 93.184.216.34 to the check and 127.0.0.1 to the client). A check made once,
when the URL is saved, therefore proves nothing about later connections. Callers must either
re-check right before each connection, or, better, connect to the addresses the check
returned: `pin_outbound_url` checks a URL and binds it to the checked address (the original
host goes in the Host header and TLS SNI), and `resolve_checked` gives the checked IPs of a
bare host. Redirects must not be followed blindly either: a redirect target is a new URL to
check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from shared.errors import UnprocessableEntity

__all__ = [
    "DEFAULT_RESOLVE_TIMEOUT",
    "OutboundURLRefused",
    "PinnedURL",
    "check_outbound_url",
    "pin_outbound_url",
    "resolve_checked",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_RESOLVE_TIMEOUT = 5.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254")}
# A DNS name after IDNA encoding: letters, digits, '-' and '_' in dot-separated labels.
_HOSTNAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# What the C resolver may read as an IPv4 number: decimal, octal or hex parts, 1 to 4 of them.
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")
# RFC 6761: names under .localhost are loopback (these), names under .invalid never resolve.
_LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


class OutboundURLRefused(UnprocessableEntity):
    """The platform will not connect to this URL; `detail` says exactly why."""

    code = "url_not_allowed"


@dataclass(frozen=True)
class _AllowEntry:
    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, port: int, address: IPAddress) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        assert self.network is not None
        return any(
            candidate.version == self.network.version and candidate in self.network
            for candidate in {address, _embedded_ipv4(address)}
        )


def _parse_allow_entry(entry: str) -> _AllowEntry | None:
    text = entry.strip().lower()
    if not text:
        return None
    try:
        if "/" in text:
            return _AllowEntry(network=ipaddress.ip_network(text, strict=False))
        port: int | None = None
        if text.startswith("["):
            address_text, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError("unbalanced brackets")
            if rest:
                port = _parse_port(rest[1:])
            return _AllowEntry(network=ipaddress.ip_network(address_text), port=port)
        try:
            return _AllowEntry(network=ipaddress.ip_network(text))
        except ValueError:
            pass
        if text.count(":") == 1:
            text, _, port_text = text.partition(":")
            port = _parse_port(port_text)
            try:
                return _AllowEntry(network=ipaddress.ip_network(text), port=port)
            except ValueError:
                pass
        host = _normalize_hostname(text)
        if host is None:
            raise ValueError("not a hostname")
        literal = _literal_address(host)  # "0x7f.1" means 127.0.0.1 here as in URLs
        if literal is not None:
            return _AllowEntry(network=ipaddress.ip_network(literal), port=port)
        return _AllowEntry(host=host, port=port)
    except ValueError as exc:
        raise ValueError(
            f"Invalid outbound allow-list entry {entry!r} ({exc}); use a hostname, "
            "host:port, an IP address or a CIDR such as 10.0.0.0/8."
        ) from None


def _parse_allow_list(allow: Sequence[str]) -> list[_AllowEntry]:
    if isinstance(allow, str):
        raise TypeError("allow must be a sequence of entries, not a single string")
    return [parsed for entry in allow if (parsed := _parse_allow_entry(entry)) is not None]


def _parse_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"port {text!r} is not between 1 and 65535")
    return int(text)


def _normalize_hostname(host: str) -> str | None:
    """The lower-case ASCII (IDNA) form of a DNS name without its final dot, or None."""
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if len(ascii_host) > 253 or not _HOSTNAME.fullmatch(ascii_host):
        return None
    return ascii_host


def _literal_address(host: str) -> IPAddress | None:
    """The address a host denotes by itself (no DNS), including C-resolver numeric forms."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            # inet_aton reads "0x7f.1", "2130706433", "017700000001" as getaddrinfo does.
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_plain_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for, if it embeds one; else the address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _refusal_reason(address: IPAddress) -> str | None:
    """Why connecting to this address is not allowed, or None for a public address."""
    inner = _embedded_ipv4(address)
    reason = _address_refusal(inner)
    if reason is not None and inner != address:
        return f"{reason} (it embeds {inner})"
    return reason


def _address_refusal(inner: IPAddress) -> str | None:
    if inner.is_unspecified:
        return "an unspecified address"
    if inner.is_loopback:
        return "a loopback address"
    if inner.is_link_local:
        if inner in _METADATA:
            return "a link-local address (the cloud metadata endpoint)"
        return "a link-local address"
    if inner.is_multicast:
        return "a multicast address"
    if isinstance(inner, ipaddress.IPv4Address) and inner in _CGNAT:
        return "a shared (CGNAT, 100.64.0.0/10) address"
    if isinstance(inner, ipaddress.IPv6Address) and inner.is_site_local:
        return "a site-local address"
    if inner.is_reserved:
        return "a reserved address"
    if inner.is_private:
        return "a private address"
    if not inner.is_global:
        return "a non-public (special-purpose) address"
    return None


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (tests replace this)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def _resolve(host: str, port: int, resolve_timeout: float) -> list[IPAddress]:
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address(a) for a in _LOOPBACK_ADDRESSES]
    if host == "invalid" or host.endswith(".invalid"):
        raise OutboundURLRefused(
            f"URL refused: host {host!r} cannot be resolved (.invalid names never resolve)."
        )
    try:
        async with asyncio.timeout(resolve_timeout):
            raw = await _getaddrinfo(host, port)
    except TimeoutError:
        raise OutboundURLRefused(
            f"URL refused: host {host!r} could not be resolved within {resolve_timeout:g}s."
        ) from None
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutboundURLRefused(
            f"URL refused: host {host!r} cannot be resolved ({reason})."
        ) from None
    addresses: list[IPAddress] = []
    for text in raw:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise OutboundURLRefused(
                f"URL refused: host {host!r} resolved to {text!r}, which is not an IP address."
            ) from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundURLRefused(f"URL refused: host {host!r} cannot be resolved (no addresses).")
    return addresses


async def _checked_addresses(
    given: str, port: int, allow: list[_AllowEntry], resolve_timeout: float
) -> tuple[str, IPAddress | None, list[IPAddress]]:
    """Validate and resolve the host `given` in a URL; refuse unless every address passes.

    Returns the canonical host, its literal address (when it is one) and its addresses.
    """
    host, literal = _validate_host(given)
    addresses = [literal] if literal is not None else await _resolve(host, port, resolve_timeout)
    for address in addresses:
        reason = _refusal_reason(address)
        if reason is None or any(entry.matches(host, port, address) for entry in allow):
            continue
        if literal is not None:
            shown = given if _is_plain_ip(given) else f"{given} (= {address})"
            raise OutboundURLRefused(f"URL refused: host {shown} is {reason}.")
        raise OutboundURLRefused(f"URL refused: host {given!r} resolves to {address}, {reason}.")
    return host, literal, addresses


def _validate_host(raw: str) -> tuple[str, IPAddress | None]:
    """The canonical host and its literal address (if it is one), or a refusal."""
    literal = _literal_address(raw)
    if literal is not None:
        return str(literal), literal
    host = _normalize_hostname(raw)
    if host is None:
        raise OutboundURLRefused(f"URL refused: {raw!r} is not a valid host name.")
    literal = _literal_address(host)  # e.g. "127.0.0.1." once its final dot is gone
    if literal is not None:
        return str(literal), literal
    return host, None


async def resolve_checked(
    host: str,
    port: int,
    allow: Sequence[str] = (),
    *,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> list[str]:
    """Resolve `host` and return its addresses, refusing as `check_outbound_url` does.

    Connect to one of the returned addresses (sending `host` as Host header and TLS server
    name) so that DNS cannot answer differently between the check and the connection.
    """
    if not 0 < port < 65536:
        raise OutboundURLRefused(f"URL refused: port {port} is not between 1 and 65535.")
    given = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    _, _, addresses = await _checked_addresses(
        given, port, _parse_allow_list(allow), resolve_timeout
    )
    return [str(address) for address in addresses]


def _split(url: str) -> SplitResult:
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise OutboundURLRefused("URL refused: it contains whitespace or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise OutboundURLRefused(f"URL refused: it is malformed ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise OutboundURLRefused(f"URL refused: {shown}; only http and https are allowed.")
    if "@" in parts.netloc:
        raise OutboundURLRefused(
            "URL refused: credentials in the URL (user:password@) are not allowed; "
            "give the API key separately."
        )
    if "\\" in parts.netloc:
        raise OutboundURLRefused("URL refused: the host contains a backslash.")
    if not parts.hostname:
        raise OutboundURLRefused("URL refused: it has no host.")
    return parts


@dataclass(frozen=True)
class PinnedURL:
    """A checked URL bound to the address the check saw: connect there, never re-resolve.

    `url` has the host replaced by that address; `headers` carry the original Host and
    `extensions` the TLS server name (httpx: certificate checked against the real name).
    """

    url: str
    host: str
    address: str
    headers: dict[str, str]
    extensions: dict[str, Any]

    def join(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"


async def _check(
    url: str, allow: Sequence[str], resolve_timeout: float
) -> tuple[SplitResult, int, list[IPAddress]]:
    """The normalized URL's parts, its port and checked addresses; see check_outbound_url."""
    entries = _parse_allow_list(allow)
    parts = _split(url.strip())
    scheme = parts.scheme.lower()
    try:
        explicit_port = parts.port
    except ValueError:
        raise OutboundURLRefused("URL refused: its port is not a number from 1 to 65535.") from None
    if explicit_port == 0:
        raise OutboundURLRefused("URL refused: port 0 is not a valid port.")
    port = explicit_port or _DEFAULT_PORTS[scheme]
    assert parts.hostname is not None
    host, literal, addresses = await _checked_addresses(
        parts.hostname, port, entries, resolve_timeout
    )

    netloc = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
    if port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    normalized = urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))
    return urlsplit(normalized), port, addresses


async def check_outbound_url(
    url: str,
    *,
    allow: Sequence[str] = (),
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> str:
    """Refuse `url` unless the platform may connect to it; returns the normalized URL.

    Only http and https, no credentials, and a host whose addresses (every one of them, as
    resolved now, waiting at most `resolve_timeout` seconds for DNS) are public or admitted
    by `allow`. The normalized URL has a lower-case scheme and host, numeric hosts in
    canonical form, no default port, no fragment and no trailing slash. See the module
    docstring for DNS rebinding: a passed check does not make later connections safe; use
    `pin_outbound_url` for a connection.

    Raises OutboundURLRefused (422, code "url_not_allowed") naming the reason, and ValueError
    for a malformed allow-list entry (a configuration error).
    """
    normalized, _, _ = await _check(url, allow, resolve_timeout)
    return normalized.geturl()


async def pin_outbound_url(
    url: str,
    *,
    allow: Sequence[str] = (),
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> PinnedURL:
    """Check `url` as `check_outbound_url` does and pin it to the first checked address.

    DNS is asked once: the connection goes to the address the check approved, so a name that
    answers a public address to the check and a private one afterwards (rebinding) gains
    nothing. Call it before every connection (or series of requests made together).
    """
    parts, port, addresses = await _check(url, allow, resolve_timeout)
    address = addresses[0]
    assert parts.hostname is not None
    shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = shown if port == _DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"
    host = parts.netloc  # as normalized: the name, with its port when not the default
    extensions: dict[str, Any] = {}
    if parts.scheme == "https":
        extensions["sni_hostname"] = parts.hostname
    return PinnedURL(
        url=urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        host=host,
        address=str(address),
        headers={"Host": host},
        extensions=extensions,
    )
