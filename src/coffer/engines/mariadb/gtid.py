"""MariaDB GTID positions, pure (no I/O).

A GTID is ``domain-server_id-sequence`` (``0-1234-42``); a position such as
``@@gtid_slave_pos`` or ``@@gtid_binlog_pos`` lists at most one GTID per domain,
comma-separated (``0-1234-42,1-77-5``), and may be empty. Within one domain the
sequence numbers grow whichever server wrote the transaction (a server always numbers
its next transaction after the highest it has seen in the domain), so of two GTIDs of
one domain the one with the larger sequence number is the later one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from coffer.errors import BadRequest

__all__ = ["Gtid", "format_position", "latest", "parse_position", "sequence"]

_GTID = re.compile(r"([0-9]{1,10})-([0-9]{1,10})-([0-9]{1,20})")
_MAX_DOMAIN = 2**32 - 1
_MAX_SEQUENCE = 2**64 - 1


@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server_id: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.sequence}"


def parse_position(text: str, *, what: str = "GTID position") -> dict[int, Gtid]:
    """``{domain: Gtid}`` of a position (``""`` is the empty one). ``BadRequest`` naming
    ``what`` if ``text`` is not a list of GTIDs with at most one per domain."""
    position: dict[int, Gtid] = {}
    text = text.strip()
    if not text:
        return position
    for item in text.split(","):
        match = _GTID.fullmatch(item.strip())
        if match is None:
            raise BadRequest(
                f"{what} {text!r} is not a MariaDB GTID list such as '0-1-42' or '0-1-42,1-2-7'"
            )
        gtid = Gtid(int(match[1]), int(match[2]), int(match[3]))
        if gtid.domain > _MAX_DOMAIN or gtid.server_id > _MAX_DOMAIN:
            raise BadRequest(f"{what} {text!r} has a domain or server id above 2**32-1")
        if gtid.sequence > _MAX_SEQUENCE:
            raise BadRequest(f"{what} {text!r} has a sequence number above 2**64-1")
        if gtid.domain in position:
            raise BadRequest(f"{what} {text!r} names domain {gtid.domain} twice")
        position[gtid.domain] = gtid
    return position


def format_position(position: Mapping[int, Gtid]) -> str:
    """The text MariaDB reads back (``SET GLOBAL gtid_slave_pos``), domains in order."""
    return ",".join(str(position[domain]) for domain in sorted(position))


def latest(*positions: Mapping[int, Gtid]) -> dict[int, Gtid]:
    """Per domain, the later GTID (larger sequence number) of ``positions``."""
    merged: dict[int, Gtid] = {}
    for position in positions:
        for domain, gtid in position.items():
            known = merged.get(domain)
            if known is None or gtid.sequence > known.sequence:
                merged[domain] = gtid
    return merged


def sequence(position: Mapping[int, Gtid], domain: int) -> int:
    """The sequence number ``position`` has reached in ``domain`` (0 if none)."""
    gtid = position.get(domain)
    return 0 if gtid is None else gtid.sequence
