"""Chat channel names: ``chat:community:<id>[:<slug>]``, ``chat:group:<id>``,
``chat:party:<id>`` (a watch party), ``dm:<a>:<b>``.

Each conversation has exactly one name: ids are written without leading zeros, a community's
default channel has no slug, and a direct message names the lower user id first. Any other
spelling names no channel (it would otherwise open a second stream for the same conversation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_SLUG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Kind = Literal["community", "group", "party", "dm"]


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A parsed chat channel name."""

    name: str
    kind: Kind
    # community, group or watch party id; for a direct message, the lower user id
    id: int
    # a community's non-default channel
    slug: str | None = None
    # a direct message's higher user id
    other: int | None = None

    @property
    def users(self) -> tuple[int, int]:
        """The two users of a direct message."""
        assert self.other is not None, "not a direct message"
        return self.id, self.other


def parse_channel(name: str) -> ChannelRef | None:
    """The chat channel ``name`` names, or None when it names none."""
    parts = name.split(":")
    if parts[0] == "chat" and len(parts) in (3, 4) and _ID.match(parts[2]):
        if parts[1] == "community":
            if len(parts) == 3:
                return ChannelRef(name, "community", int(parts[2]))
            if _SLUG.match(parts[3]):
                return ChannelRef(name, "community", int(parts[2]), slug=parts[3])
        elif parts[1] == "group" and len(parts) == 3:
            return ChannelRef(name, "group", int(parts[2]))
        elif parts[1] == "party" and len(parts) == 3:
            return ChannelRef(name, "party", int(parts[2]))
        return None
    if parts[0] == "dm" and len(parts) == 3 and _ID.match(parts[1]) and _ID.match(parts[2]):
        low, high = int(parts[1]), int(parts[2])
        if low < high:
            return ChannelRef(name, "dm", low, other=high)
    return None


def community_channel(community_id: int, slug: str, is_default: bool) -> str:
    """The gateway name of a community's channel."""
    return (
        f"chat:community:{community_id}" if is_default else f"chat:community:{community_id}:{slug}"
    )


def group_channel(group_id: int) -> str:
    return f"chat:group:{group_id}"


def party_channel(party_id: int) -> str:
    return f"chat:party:{party_id}"


def dm_channel(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"dm:{low}:{high}"
