"""Who the client is: the peer, or behind a trusted reverse proxy the address that proxy saw.

Every per-client rule (the rate limit on public posts, the kiosk enrollment limit, the survey
cookie's `Secure` flag) asks here, so they all agree. Forwarding headers are believed only from a
peer listed in FEEDBACK_TRUSTED_PROXIES; from anyone else they are ignored, so a client cannot
name itself someone else to get past a limit. Of `X-Forwarded-For` (or, when it is absent,
`Forwarded: for=`) the rightmost address that is not itself a trusted proxy is the client: each
trusted proxy appends the address it saw, and everything left of that is whatever the client sent.
"""

import hashlib
import ipaddress
from functools import lru_cache

from litestar.types import Scope

from feedback.settings import Settings, proxy_networks

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> Networks:
    return proxy_networks(entries)  # parsed once per setting, not per request


def _address(text: str) -> Address | None:
    """An address from a header value: bare, `[v6]:port`, `v4:port`, quoted; None when it is none
    (`unknown`, an obfuscated `_name`, garbage)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return ip


def _trusted(ip: Address | None, networks: Networks) -> bool:
    return ip is not None and any(ip in network for network in networks)


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


def _forwarded_chain(scope: Scope) -> list[Address | None]:
    """The hops the proxies reported, farthest first: X-Forwarded-For, else Forwarded's `for=`."""
    forwarded_for = _header_values(scope, b"x-forwarded-for")
    if forwarded_for:
        return [_address(hop) for value in forwarded_for for hop in value.split(",")]
    chain: list[Address | None] = []
    for value in _header_values(scope, b"forwarded"):
        for element in value.split(","):
            hop = None
            for pair in element.split(";"):
                name, _, found = pair.strip().partition("=")
                if name.lower() == "for":
                    hop = _address(found)
            chain.append(hop)
    return chain


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def client_address(scope: Scope, settings: Settings) -> str:
    """The client's address as text (the peer's unless the peer is a trusted proxy)."""
    peer = _peer(scope)
    if not settings.trusted_proxies:
        return peer
    networks = _networks(settings.trusted_proxies)
    nearest = _address(peer)
    if not _trusted(nearest, networks):
        return peer
    for hop in reversed(_forwarded_chain(scope)):
        if hop is None:
            break  # a hop nobody can name: the last one a trusted proxy vouched for stands
        if not _trusted(hop, networks):
            return str(hop)
        nearest = hop
    return str(nearest)  # every hop a trusted proxy: the farthest one is the client


def client_key(scope: Scope, settings: Settings) -> str:
    """A keyed hash of the client's address, what limits count by: the address itself is never kept."""
    return hashlib.sha256(f"{settings.secret}:{client_address(scope, settings)}".encode()).hexdigest()[:24]


def forwarded_https(scope: Scope, settings: Settings) -> bool:
    """Whether the request reached us over https: directly, or per a trusted proxy's X-Forwarded-Proto."""
    if scope.get("scheme") == "https":
        return True
    if not settings.trusted_proxies or not _trusted(_address(_peer(scope)), _networks(settings.trusted_proxies)):
        return False
    proto = _header_values(scope, b"x-forwarded-proto")
    return bool(proto) and proto[-1].split(",")[-1].strip().lower() == "https"
