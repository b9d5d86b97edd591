"""The SQLite trigram search gives exactly the reference's case-insensitive substring answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from memlora.store import open_store
from memlora.store.graph import Entity
from memlora.store.memory import GraphState

# Few letters, mixed case, some non-ASCII and FTS syntax, so that substrings collide often.
text = st.text(alphabet="abAB ç\u00c7\u0130iI\u03a3\u03c3\"*()-", min_size=1, max_size=12).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(
    entities=st.lists(st.builds(Entity, text, text, st.lists(text, max_size=3)), max_size=8, unique_by=lambda e: e.name),
    query=st.text(alphabet="abAB ç\u00c7\u0130iI\u03a3\u03c3\"*()-", max_size=6),
)
def test_sqlite_search_equals_plain_substring_search(entities: list[Entity], query: str) -> None:
    model = GraphState()
    model.create_entities(entities)
    with open_store("sqlite::memory:") as store:
        store.create_entities(entities)
        assert store.search_nodes(query) == model.search_nodes(query)
