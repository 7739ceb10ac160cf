"""What hub processes tell each other about a document, on the broker channel ``yjs:<doc>``.

An envelope is one byte of kind, the sender's 16-byte hub id, the addressee's hub id (16 zero
bytes: every hub), then the payload. Hubs drop their own envelopes (the broker echoes them).

=============  ===============  ==================================================================
kind           payload          a hub holding the document answers
=============  ===============  ==================================================================
UPDATE         update           (applies it)
AWARENESS      awareness update (applies it, forwards it to its clients)
SYNC_REQUEST   state vector     SYNC_REPLY with what the sender lacks, SYNC_OFFER with its own
                                state vector, AWARENESS with its clients' states (sent by a hub
                                that just loaded the document)
SYNC_OFFER     state vector     SYNC_REPLY with what the sender lacks (anti-entropy)
SYNC_REPLY     update           (applies it)
KICK           user id (8 B)    closes that user's connections to the document (1013: they
                                reconnect with a fresh ticket, under their new role)
=============  ===============  ==================================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

HUB_ID_BYTES = 16
EVERY_HUB = bytes(HUB_ID_BYTES)
_HEADER = 1 + 2 * HUB_ID_BYTES


class RelayKind(enum.IntEnum):
    UPDATE = 1
    AWARENESS = 2
    SYNC_REQUEST = 3
    SYNC_OFFER = 4
    SYNC_REPLY = 5
    KICK = 6


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: RelayKind
    sender: bytes
    target: bytes
    payload: bytes

    def encode(self) -> bytes:
        return bytes([self.kind]) + self.sender + self.target + self.payload

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Raises ValueError when ``data`` is no envelope."""
        if len(data) < _HEADER:
            raise ValueError("short envelope")
        kind = RelayKind(data[0])
        return cls(
            kind,
            data[1 : 1 + HUB_ID_BYTES],
            data[1 + HUB_ID_BYTES : _HEADER],
            data[_HEADER:],
        )


def channel_of(doc: str) -> str:
    return f"yjs:{doc}"


def doc_of(channel: str) -> str | None:
    return channel[4:] if channel.startswith("yjs:") else None
