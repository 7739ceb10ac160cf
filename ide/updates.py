"""Applying and compacting Yjs updates without losing any.

Two facts about pycrdt 0.14 (Yrs 0.28) shape this module, both checked against Node's Yjs:

* An update whose dependencies have not arrived stays *pending* inside the document. When two
  or more pending updates wait for the same missing one, applying that one loses part of them
  (Yjs keeps all). ``DocumentState`` therefore keeps what is pending itself, merged into one
  update with ``merge_updates`` (which is lossless), and hands it back together with every
  later update; the document's state vector tells what it has integrated.
* A compacted snapshot written from a document (``Doc.get_update``) is 10x smaller than a
  merge of the log for typing, but it drops whatever was still pending. Compaction uses the
  snapshot only when nothing is pending, and the plain merge otherwise.

Malformed updates raise ``ValueError``; some ill-formed ones make Yrs panic, which pyo3 raises as
``PanicException`` (a ``BaseException``): both are reported as ``BadUpdate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pycrdt import Doc, get_update, merge_updates

EMPTY_UPDATE = b"\x00\x00"

T = TypeVar("T")


class BadUpdate(ValueError):
    """Bytes that are not a Yjs update this document can take."""


def _guard(call: Callable[[], T]) -> T:
    try:
        return call()
    except ValueError as exc:
        raise BadUpdate(str(exc)) from None
    except BaseException as exc:
        # pyo3 turns a Rust panic into PanicException, which derives from BaseException.
        if type(exc).__name__ == "PanicException":
            raise BadUpdate(f"the update breaks the CRDT library: {exc}") from None
        raise


def has_structs(update: bytes) -> bool:
    """Whether an update (v1) inserts anything: its first varint counts the clients whose
    structs it carries; zero means it only deletes."""
    return bool(update) and update[0] != 0


class DocumentState:
    """A pycrdt document fed by updates in any order, any number of times."""

    def __init__(self, doc: Doc[Any] | None = None) -> None:
        self.doc = doc if doc is not None else Doc()
        self._pending: bytes | None = None

    @property
    def pending(self) -> bytes | None:
        """What arrived but cannot be integrated yet (its dependencies are missing)."""
        return self._pending

    def integrate(self, update: bytes) -> None:
        """Apply an update (plus whatever was pending).

        Raises:
            BadUpdate: not an update, or one the document cannot take; nothing changed.
        """
        if update == EMPTY_UPDATE:
            return
        if self._pending is not None:
            pending = self._pending
            candidate = _guard(lambda: merge_updates(pending, update))
        else:
            candidate = update
        _guard(lambda: self.doc.apply_update(candidate))
        rest = _guard(lambda: get_update(candidate, self.doc.get_state()))
        self._pending = rest if has_structs(rest) else None

    def missing_for(self, state_vector: bytes) -> bytes:
        """Everything this document has that a peer with ``state_vector`` lacks.

        Raises:
            BadUpdate: not a state vector.
        """
        return _guard(lambda: self.doc.get_update(state_vector))

    @property
    def state_vector(self) -> bytes:
        return self.doc.get_state()


def load(updates: Iterable[bytes]) -> tuple[DocumentState, int]:
    """A document from stored updates, and how many rows were skipped as unreadable: one bad
    row must not make a document unreadable."""
    rows = [u for u in updates if u and u != EMPTY_UPDATE]
    state = DocumentState()
    if not rows:
        return state, 0
    try:
        # One merged update: Yrs integrates it in dependency order, whatever the row order.
        state.integrate(_guard(lambda: merge_updates(*rows)))
        return state, 0
    except BadUpdate:
        pass
    state = DocumentState()
    skipped = 0
    for row in rows:
        try:
            state.integrate(row)
        except BadUpdate:
            skipped += 1
    return state, skipped


def compact(updates: list[bytes], *, live: DocumentState | None = None) -> bytes:
    """One update equivalent to all of ``updates`` (and to what ``live`` holds beyond them).

    Lossless: when anything in the log is pending (a dependency not stored yet), the log is
    merged as it is; otherwise the document's own encoding is used, keeping the log's full
    delete set so deletions of content stored later still apply.

    Raises:
        BadUpdate: some update is unreadable (the caller drops it and retries).
    """
    rows = [u for u in updates if u and u != EMPTY_UPDATE]
    merged = _guard(lambda: merge_updates(*rows)) if rows else EMPTY_UPDATE
    doc: Doc[Any] = Doc()
    _guard(lambda: doc.apply_update(merged))
    rest = _guard(lambda: get_update(merged, doc.get_state()))
    if has_structs(rest):
        result = merged
    else:
        snapshot = doc.get_update()
        result = _guard(lambda: merge_updates(snapshot, rest)) if rest != EMPTY_UPDATE else snapshot
    if live is not None:
        # What a hub holds but the log lacks (relayed from a hub that stopped before saving).
        extra = live.doc.get_update(doc.get_state())
        if has_structs(extra):
            result = _guard(lambda: merge_updates(result, extra))
    return result


def readable(update: bytes) -> bool:
    """Whether a fresh document takes ``update``."""
    try:
        _guard(lambda: Doc().apply_update(update))
    except BadUpdate:
        return False
    return True
