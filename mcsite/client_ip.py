"""The client's address: one rule for login lockouts (django-axes), the API's
rate limits (DRF throttles) and the audit trail.

The address is the socket's (REMOTE_ADDR). Only when that peer is one of the
proxies named in MCSITE_TRUSTED_PROXIES is X-Forwarded-For read, from the
right: each trusted proxy appended the address it saw, so the rightmost
address that is not itself a trusted proxy is the client. Whatever a client
writes into the header itself sits to the left of that and is never used —
so a made-up header changes nothing, with or without a proxy."""

import ipaddress
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values) -> list[IPNetwork]:
    """IPs and CIDRs ("10.0.0.1", "10.0.0.0/8", "::1"); ValueError names the bad one."""
    networks = []
    for value in values:
        value = str(value).strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return networks


def _address(value: str) -> IPAddress | None:
    """An address from REMOTE_ADDR or one X-Forwarded-For hop, or None.
    Drops a port ("1.2.3.4:80", "[::1]:80") and unwraps IPv4-mapped IPv6."""
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:
        value = value[1:value.index("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=8)
def _trusted(configured: tuple) -> tuple[IPNetwork, ...]:
    return tuple(n if not isinstance(n, str) else ipaddress.ip_network(n, strict=False) for n in configured)


def _is_trusted(address: IPAddress, networks) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_ip(request) -> str | None:
    """The client's address as text (normalised), or None without a request."""
    from django.conf import settings

    if request is None:
        return None
    meta = request.META
    remote = _address(meta.get("REMOTE_ADDR") or "")
    if remote is None:
        return None
    networks = _trusted(tuple(getattr(settings, "MCSITE_TRUSTED_PROXIES", ()) or ()))
    client = remote
    if networks and _is_trusted(remote, networks):
        hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage: keep the last address a trusted proxy vouched for
            client = address
            if not _is_trusted(address, networks):
                break
    return str(client)


def login_client(request) -> str | None:
    """Who is counted for login throttling: the client's address, but an
    IPv6 client by its /64 — one subscriber commonly has a whole /64, so
    counting each of its 2^64 addresses apart would give unlimited guesses.
    The /64 is written as its first address (axes stores an IP address)."""
    address = client_ip(request)
    if address is None or ":" not in address:
        return address
    return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
