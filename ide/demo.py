"""The demo project's files (``make run``): a small program to run and an exercise to finish
together, written into a new project's document instead of its empty ``main.py``."""

from __future__ import annotations

from pycrdt import Map, Text

from ide.projects import FIRST_FILE, doc_name
from ide.store import DocumentStore
from ide.updates import load

MAIN_PY = '''\
"""Our study group's first program: press Run, then change it together."""

from collections import Counter

NOTES = """
Python is fun, and Python is readable.
A list keeps things in order; a dict maps keys to values.
Practice a little every day, and practice together.
"""


def word_counts(text: str) -> Counter[str]:
    """How often each word appears, ignoring case and punctuation."""
    words = (word.strip(".,;").lower() for word in text.split())
    return Counter(word for word in words if word)


def main() -> None:
    counts = word_counts(NOTES)
    print(f"{sum(counts.values())} words, {len(counts)} different ones")
    for word, n in counts.most_common(3):
        print(f"{word:>12} {'#' * n}")


if __name__ == "__main__":
    main()
'''

PRACTICE_PY = '''\
"""Exercise: make fizzbuzz(15) return "FizzBuzz", then run this file."""


def fizzbuzz(n: int) -> str:
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


for n in range(1, 16):
    print(fizzbuzz(n), end=" ")
print()
'''

DEMO_FILES = {FIRST_FILE: MAIN_PY, "practice.py": PRACTICE_PY}


async def write_demo_files(store: DocumentStore, project_id: int) -> bool:
    """Fill a project's document with ``DEMO_FILES`` while it is as ``Projects.create`` left it
    (only an empty ``main.py``); returns whether it wrote. Stored as one more update in the
    document's log, which is what a room loads: call it before anyone opens the document (at
    start), since a room already loaded would not see it."""
    name = doc_name(project_id)
    state, _ = load(await store.load(name))
    files = state.doc.get("files", type=Map)
    first = files.get(FIRST_FILE)
    if list(files.keys()) != [FIRST_FILE] or not isinstance(first, Text) or str(first):
        return False
    before = state.state_vector
    with state.doc.transaction():
        first.insert(0, DEMO_FILES[FIRST_FILE])
        for path, text in DEMO_FILES.items():
            if path != FIRST_FILE:
                files[path] = Text(text)
    await store.append({name: state.doc.get_update(before)})
    return True
