"""The one interface every memory backend implements: the nine operations of the memory tools.

Semantics follow the reference memory server where it is sound; where memlora differs on
purpose, docs/compatibility.md says so. Every mutating call is all-or-nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from memlora.store.graph import (
    AddedObservations,
    Entity,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)


@dataclass
class MergeReport:
    """What `merge_graph` changed."""

    entities_added: int = 0
    observations_added: int = 0
    relations_added: int = 0


class MemoryStore(ABC):
    @abstractmethod
    def create_entities(self, entities: list[Entity]) -> list[Entity]:
        """Adds entities whose name is new; returns the ones actually added."""

    @abstractmethod
    def create_relations(self, relations: list[Relation]) -> list[Relation]:
        """Adds relations whose (from, to, type) triple is new; both endpoints must exist."""

    @abstractmethod
    def add_observations(self, additions: list[ObservationAddition]) -> list[AddedObservations]:
        """Appends new observation strings; a missing entity fails the whole call."""

    @abstractmethod
    def delete_entities(self, names: list[str]) -> None:
        """Removes entities and every relation touching them; unknown names are ignored."""

    @abstractmethod
    def delete_observations(self, deletions: list[ObservationDeletion]) -> None:
        """Removes the given observation strings; whatever is missing is ignored."""

    @abstractmethod
    def delete_relations(self, relations: list[Relation]) -> None:
        """Removes exact (from, to, type) triples; whatever is missing is ignored."""

    @abstractmethod
    def read_graph(self) -> KnowledgeGraph:
        """The whole graph, entities and relations in insertion order."""

    @abstractmethod
    def search_nodes(self, query: str) -> KnowledgeGraph:
        """Entities whose name, type or an observation contains `query` (case-insensitive),
        plus relations with at least one endpoint among them."""

    @abstractmethod
    def open_nodes(self, names: list[str]) -> KnowledgeGraph:
        """Entities with exactly these names, plus relations with at least one endpoint among them."""

    def merge_graph(self, graph: KnowledgeGraph) -> MergeReport:
        """Bulk import for `memlora import`: adds what is new, keeps what is there.

        Unlike the tool operations it skips the per-call limits and keeps relations whose
        endpoints are missing, because a file written by another program may hold them and an
        import must not lose data. Entities of a name already present get the new
        observations appended.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot import graphs")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases files and connections."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
