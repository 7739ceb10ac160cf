"""The y-websocket wire format (what ``yjs`` + ``y-websocket`` clients send and expect).

Every WebSocket message is binary: a lib0 varuint message type, then its body.

==========  ==================================================================================
type        body
==========  ==================================================================================
0 sync      varuint step (0: step 1, a state vector; 1: step 2, an update; 2: an update), then
            the payload as a varuint-length byte string
1 awareness a varuint-length byte string holding an awareness update: a varuint count, then per
            client a varuint client id, a varuint clock and a varuint-length JSON string (the
            state, ``null`` once the client left)
2 auth      varuint 0 (permission denied), then a varuint-length reason string
3 query     no body: "send me every awareness state you know"
==========  ==================================================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import orjson

MAX_AWARENESS_ENTRIES = 10_000


class ProtocolError(ValueError):
    """A frame that is not y-websocket protocol."""


class FrameKind(enum.Enum):
    SYNC_STEP1 = "sync_step1"
    SYNC_STEP2 = "sync_step2"
    SYNC_UPDATE = "sync_update"
    AWARENESS = "awareness"
    AUTH = "auth"
    QUERY_AWARENESS = "query_awareness"


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    # state vector (step 1), update (step 2, update), awareness update, or b"" (query, auth)
    payload: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state_json: str  # "null" when the client left

    @property
    def removed(self) -> bool:
        return self.state_json == "null"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def varuint(self) -> int:
        value = 0
        shift = 0
        while True:
            if self._pos >= len(self._data):
                raise ProtocolError("truncated varuint")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ProtocolError("varuint too long")

    def bytes(self) -> bytes:
        length = self.varuint()
        end = self._pos + length
        if end > len(self._data):
            raise ProtocolError("truncated byte string")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def string(self) -> str:
        try:
            return self.bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None


def varuint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _varbytes(data: bytes) -> bytes:
    return varuint(len(data)) + data


def parse_frame(data: bytes) -> Frame:
    """Classify one client message.

    Raises:
        ProtocolError: not a y-websocket message.
    """
    reader = _Reader(data)
    kind = reader.varuint()
    if kind == 0:
        step = reader.varuint()
        payload = reader.bytes()
        if step == 0:
            return Frame(FrameKind.SYNC_STEP1, payload)
        if step == 1:
            return Frame(FrameKind.SYNC_STEP2, payload)
        if step == 2:
            return Frame(FrameKind.SYNC_UPDATE, payload)
        raise ProtocolError(f"unknown sync step {step}")
    if kind == 1:
        return Frame(FrameKind.AWARENESS, reader.bytes())
    if kind == 2:
        return Frame(FrameKind.AUTH, b"")
    if kind == 3:
        return Frame(FrameKind.QUERY_AWARENESS, b"")
    raise ProtocolError(f"unknown message type {kind}")


def parse_awareness(update: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update; states must be JSON.

    Raises:
        ProtocolError: malformed.
    """
    reader = _Reader(update)
    count = reader.varuint()
    if count > MAX_AWARENESS_ENTRIES:
        raise ProtocolError("too many awareness entries")
    entries = []
    for _ in range(count):
        client_id = reader.varuint()
        clock = reader.varuint()
        state = reader.string()
        try:
            orjson.loads(state)
        except orjson.JSONDecodeError:
            raise ProtocolError("awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, state))
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray(varuint(len(entries)))
    for entry in entries:
        out += varuint(entry.client_id)
        out += varuint(entry.clock)
        out += _varbytes(entry.state_json.encode())
    return bytes(out)


def sync_step1(state_vector: bytes) -> bytes:
    return b"\x00\x00" + _varbytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return b"\x00\x01" + _varbytes(update)


def sync_update(update: bytes) -> bytes:
    return b"\x00\x02" + _varbytes(update)


def awareness_message(update: bytes) -> bytes:
    return b"\x01" + _varbytes(update)


def permission_denied(reason: str) -> bytes:
    return b"\x02\x00" + _varbytes(reason.encode())
