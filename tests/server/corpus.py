"""A small text corpus for the embedding tests: each query has one clear answer."""

from __future__ import annotations

#: Twelve sentences on unrelated topics: each query below has one clear answer.
DOCS: dict[str, str] = {
    "cat": "The cat sleeps on the warm windowsill all afternoon.",
    "dog": "A dog fetched the ball and ran back across the park.",
    "pasta": "Boil the pasta in salted water for nine minutes.",
    "bread": "Knead the dough, let it rise, then bake the bread.",
    "python": "Python is a programming language with dynamic typing.",
    "rust": "Rust's borrow checker prevents data races at compile time.",
    "mars": "Mars is the fourth planet from the Sun.",
    "moon": "The Moon orbits the Earth about once every 27 days.",
    "piano": "She practised the piano sonata every morning.",
    "guitar": "He tuned the guitar strings before the concert.",
    "rain": "Heavy rain is expected in the city tomorrow.",
    "snow": "Fresh snow covered the mountains overnight.",
}
IDS = list(DOCS)
TEXTS = list(DOCS.values())
#: (query text, the id it must find first)
QUERIES = [
    ("which planet is fourth from the sun", "mars"),
    ("a kitten napping in the sunshine", "cat"),
    ("how long should spaghetti cook", "pasta"),
    ("memory safety checked by the compiler", "rust"),
]
QUERY_TEXTS = [q for q, _ in QUERIES]
