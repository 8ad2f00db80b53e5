"""The client's address, seen through trusted reverse proxies only."""

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache
def _networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _is_trusted(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    """The address to count a client by.

    X-Forwarded-For is believed only when the direct peer is a trusted proxy; then its entries
    are read from the right (the proxy nearest to us appended the last one), skipping trusted
    proxies, and the first untrusted entry is the client. Anyone can put anything on the left.
    """
    peer = peer or "unknown"
    networks = _networks(tuple(trusted))
    if not forwarded_for or not _is_trusted(peer, networks):
        return peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not _is_trusted(entry, networks):
            try:
                return str(ipaddress.ip_address(entry))
            except ValueError:
                return peer  # garbage where an address should be: count the proxy's peer
    return peer
