"""Quiet fraud checks on every signature attempt: blocks, a per-address limit, and trending alerts.

Run in the handler before a signature joins its batch, in memory, so the hot
path costs a few dictionary and set lookups and no query.  A signature the
screen calls fraudulent is stored ``fraudulent`` and answered exactly as a
good one, so whoever sends it learns nothing.

Attempts are counted per petition and client address (and email domain) in
fixed hour buckets: the dict of the current hour is replaced when the hour
turns, which prunes every old key at once.  Each process counts the attempts
it serves: behind a load balancer spreading one address over N processes the
limit lets up to N times ``per_address`` through before calling them
fraudulent, and a trending alert fires when one process's share passes the
threshold.  That was chosen over a Redis INCR per signature: a round trip
per attempt on the hot path, for a limit whose job is to catch a single
client hammering one petition (which a load balancer with address affinity
sends to one process anyway).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable, Iterable

from . import messages
from .signers import canonical_email

KINDS = ("address", "domain", "email")
WINDOW_SECONDS = 3600


class BlockValueError(ValueError):
    """A block's value that is no address, network, domain or email."""


def normal_block_value(kind: str, value: str) -> str:
    """A block's value as stored and matched: a network's text (strict=False), a lower-case domain, a canonical email.

    Raises ``BlockValueError`` when it is not one.
    """
    value = value.strip()
    if kind == "address":
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError as error:
            raise BlockValueError(f"not an address or CIDR network: {error}") from None
    if kind == "domain":
        domain = value.lower().rstrip(".").removeprefix("@")
        if not domain or "@" in domain or " " in domain or "." not in domain:
            raise BlockValueError("not a domain (such as example.org)")
        return domain
    if "@" not in value or value.startswith("@") or value.endswith("@"):
        raise BlockValueError("not an email address")
    return canonical_email(value)


class BlockList:
    """Every block, held so a signature is checked in O(1)-ish whatever their number.

    Emails and domains are sets (a domain also blocks its subdomains: one
    lookup per label).  Networks are kept per IP version and prefix length
    as a set of network numbers, so an address is checked with one set
    lookup per prefix length in use (at most 33 for IPv4, 129 for IPv6).
    """

    def __init__(self) -> None:
        self.emails: set[str] = set()
        self.domains: set[str] = set()
        # version -> prefix length -> set of (address int >> host bits)
        self._networks: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}

    def replace(self, blocks: Iterable[tuple[str, str]]) -> None:
        """Hold exactly ``blocks`` ``(kind, value)`` from now on (a reload)."""
        fresh = BlockList()
        for kind, value in blocks:
            fresh.add(kind, value)
        self.emails, self.domains, self._networks = fresh.emails, fresh.domains, fresh._networks

    def add(self, kind: str, value: str) -> None:
        """Hold one more block (value normalized as ``normal_block_value`` makes it)."""
        if kind == "email":
            self.emails.add(value)
        elif kind == "domain":
            self.domains.add(value)
        else:
            network = ipaddress.ip_network(value)
            host_bits = network.max_prefixlen - network.prefixlen
            by_length = self._networks[network.version]
            by_length.setdefault(network.prefixlen, set()).add(int(network.network_address) >> host_bits)

    def blocks(self, address: str | None, email: str | None, domain: str | None) -> bool:
        """Whether a signature from ``address`` by ``email`` (canonical) at ``domain`` is blocked."""
        if email is not None and email in self.emails:
            return True
        if domain is not None and self.domains:
            labels = domain.split(".")
            for start in range(len(labels) - 1):
                if ".".join(labels[start:]) in self.domains:
                    return True
        if address is not None:
            return self._address_blocked(address)
        return False

    def _address_blocked(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        by_length = self._networks[parsed.version]
        if not by_length:
            return False
        number = int(parsed)
        bits = parsed.max_prefixlen
        for length, networks in by_length.items():
            if number >> (bits - length) in networks:
                return True
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """One address or domain passing the trending threshold on one petition within the hour."""

    kind: str  # trending_address or trending_domain
    petition_id: int
    value: str
    count: int

    def frame(self) -> str:
        """The ``alert`` frame of the admin channel (declared in ``messages.py``)."""
        return messages.alert(self.kind, self.petition_id, self.value, self.count)


class SignatureScreen:
    """Counts every attempt and says whether a signature is fraudulent; raises each trending alert once.

    ``alert`` is called with an ``Alert`` (the application publishes it to
    the admin channel).  ``clock`` gives seconds (tests and benchmarks may
    pass their own).
    """

    def __init__(
        self,
        *,
        per_address: int,
        trending_threshold: int,
        alert: Callable[[Alert], None] = lambda alert: None,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_address = per_address
        self.trending_threshold = trending_threshold
        self.alert = alert
        self.enabled = enabled
        self.blocklist = BlockList()
        self._clock = clock
        self._hour = -1
        self._addresses: dict[tuple[int, str], int] = {}
        self._domains: dict[tuple[int, str], int] = {}

    def screen(self, petition_id: int, address: str | None, email: str | None, domain: str | None) -> bool:
        """Count this attempt; True when the signature must be stored fraudulent.

        Fraudulent: it matches a block, or it is more than ``per_address``
        attempts on this petition from this address within the hour.
        """
        if not self.enabled:
            return False
        hour = int(self._clock()) // WINDOW_SECONDS
        if hour != self._hour:  # the hour turned: every old count goes at once
            self._hour, self._addresses, self._domains = hour, {}, {}
        from_address = 0
        if address is not None:
            key = (petition_id, address)
            from_address = self._addresses.get(key, 0) + 1
            self._addresses[key] = from_address
            if from_address == self.trending_threshold + 1:
                self.alert(Alert("trending_address", petition_id, address, from_address))
        if domain is not None:
            key = (petition_id, domain)
            from_domain = self._domains.get(key, 0) + 1
            self._domains[key] = from_domain
            if from_domain == self.trending_threshold + 1:
                self.alert(Alert("trending_domain", petition_id, domain, from_domain))
        return from_address > self.per_address or self.blocklist.blocks(address, email, domain)
