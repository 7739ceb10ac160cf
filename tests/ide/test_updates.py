"""Properties of update handling: any interleaving and duplication of update frames converges,
compaction loses nothing, and no frame breaks the server."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from ide.protocol import ProtocolError, parse_awareness, parse_frame, sync_update
from ide.updates import DocumentState, compact, load


def editing_session(seed: int, edits: int = 30, peers: int = 3) -> tuple[list[bytes], str]:
    """Updates from ``peers`` documents editing one text concurrently (with partial syncs
    between them, so later updates depend on others' earlier ones), and the converged text."""
    rnd = random.Random(seed)
    docs: list[Doc[Any]] = [Doc(client_id=1000 + i) for i in range(peers)]
    updates: list[bytes] = []
    for doc in docs:
        doc.observe(lambda event: updates.append(event.update))
    for _ in range(edits):
        text = rnd.choice(docs).get("t", type=Text)
        if rnd.random() < 0.35 and len(text) > 3:
            start = rnd.randrange(len(text) - 1)
            del text[start : start + 2]
        else:
            text.insert(rnd.randrange(len(text) + 1), rnd.choice(["ab", "x", "yz!"]))
        if rnd.random() < 0.5:
            a, b = rnd.sample(docs, 2)
            b.apply_update(a.get_update(b.get_state()))
            a.apply_update(b.get_update(a.get_state()))
    reference: Doc[Any] = Doc()
    for doc in docs:
        reference.apply_update(doc.get_update())
    # Deduplicate: a peer re-emits what it received from a sync.
    unique = list(dict.fromkeys(updates))
    return unique, str(reference.get("t", type=Text))


def text_of(state: DocumentState) -> str:
    return str(state.doc.get("t", type=Text))


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], str]:
    """A session's updates, and one delivery of them: any order, some more than once."""
    seed = draw(st.integers(0, 10_000))
    updates, expected = editing_session(seed)
    order = draw(st.permutations(range(len(updates))))
    extra = draw(st.lists(st.sampled_from(range(len(updates))), max_size=len(updates)))
    frames = [updates[i] for i in order]
    for i in extra:
        frames.insert(draw(st.integers(0, len(frames))), updates[i])
    return updates, frames, expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_any_interleaving_and_duplication_converges(
    case: tuple[list[bytes], list[bytes], str],
) -> None:
    _, frames, expected = case
    state = DocumentState()
    for frame in frames:
        state.integrate(frame)
    assert text_of(state) == expected
    assert state.pending is None
    # What the server persists (the frames as they came) reloads to the same document, and so
    # does any compaction of any part of it.
    reloaded, skipped = load(frames)
    assert skipped == 0
    assert text_of(reloaded) == expected
    cut = len(frames) // 2
    compacted, _ = load([compact(frames[:cut]), *frames[cut:]])
    assert text_of(compacted) == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.data())
def test_compaction_with_missing_dependencies_loses_nothing(seed: int, data: st.DataObject) -> None:
    """A log missing some updates (another hub has not saved them yet) compacts into a row
    that, with the missing ones added later in any order, gives the full document."""
    updates, expected = editing_session(seed)
    missing = data.draw(st.sets(st.sampled_from(range(len(updates))), min_size=1, max_size=3))
    stored = [u for i, u in enumerate(updates) if i not in missing]
    row = compact(stored)
    late = [updates[i] for i in sorted(missing)]
    for rows in ([row, *late], [*late, row], [compact([row, *late])]):
        state = DocumentState()
        for update in rows:
            state.integrate(update)
        assert text_of(state) == expected


def test_compaction_shrinks_typing() -> None:
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    for _ in range(2000):
        text.insert(len(text), "x")
    row = compact(updates)
    assert len(row) < sum(map(len, updates)) / 20
    state, _ = load([row])
    assert text_of(state) == "x" * 2000


def test_live_document_fills_what_the_log_lacks() -> None:
    updates, expected = editing_session(7)
    live = DocumentState()
    for update in updates:
        live.integrate(update)
    row = compact(updates[: len(updates) // 2], live=live)
    assert text_of(load([row])[0]) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_no_frame_breaks_parsing_or_the_document(data: bytes) -> None:
    state = DocumentState()
    state.integrate(b"\x01\x01\x01\x00\x04\x01\x01t\x01a\x00")  # one char: "a"
    before = state.doc.get_update()
    try:
        frame = parse_frame(data)
    except ProtocolError:
        return
    try:
        state.integrate(frame.payload)
    except ValueError:
        assert state.doc.get_update() == before
    with contextlib.suppress(ProtocolError):
        parse_awareness(frame.payload)


def test_update_frames_round_trip() -> None:
    assert parse_frame(sync_update(b"\x00\x00")).payload == b"\x00\x00"
