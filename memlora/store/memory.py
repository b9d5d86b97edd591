"""The nine operations over a graph held in Python lists: the semantics in their plainest form.

The JSONL backend loads the file into a `GraphState`, runs one operation and writes the result
back; tests use it as an executable statement of the intended semantics. Every mutating method
checks everything that can fail before it changes anything, so a failed call leaves the state
exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from memlora.store.base import MergeReport
from memlora.store.graph import (
    AddedObservations,
    Entity,
    EntityNotFoundError,
    KnowledgeGraph,
    ObservationAddition,
    ObservationDeletion,
    Relation,
)


def unique(items: Iterable[str]) -> list[str]:
    """Drops repeated strings, keeping the first occurrence and the order."""
    return list(dict.fromkeys(items))


def unique_entities(entities: Iterable[Entity]) -> list[Entity]:
    """The first entity of each name, with its observations deduplicated; copies, never aliases."""
    seen: dict[str, Entity] = {}
    for entity in entities:
        if entity.name not in seen:
            seen[entity.name] = Entity(entity.name, entity.entity_type, unique(entity.observations))
    return list(seen.values())


def matches(entity: Entity, needle_lower: str) -> bool:
    """Case-insensitive substring match over name, type and observations (the reference rule)."""
    return (
        needle_lower in entity.name.lower()
        or needle_lower in entity.entity_type.lower()
        or any(needle_lower in text.lower() for text in entity.observations)
    )


class GraphState:
    """A whole graph in memory with a name index; entities and relations keep insertion order.

    A file written by the reference server may hold two entities of one name; like the
    reference, lookups then use the first and deletes remove all of them.
    """

    def __init__(self, graph: KnowledgeGraph | None = None) -> None:
        graph = graph or KnowledgeGraph()
        self.entities: list[Entity] = list(graph.entities)
        self.relations: list[Relation] = list(graph.relations)
        self._by_name: dict[str, Entity] = {}
        for entity in reversed(self.entities):
            self._by_name[entity.name] = entity
        self._relation_set = set(self.relations)

    def graph(self) -> KnowledgeGraph:
        return KnowledgeGraph(entities=list(self.entities), relations=list(self.relations))

    def _require(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self._by_name:
                raise EntityNotFoundError(name)

    def create_entities(self, entities: list[Entity]) -> list[Entity]:
        added = [e for e in unique_entities(entities) if e.name not in self._by_name]
        for entity in added:
            self.entities.append(entity)
            self._by_name[entity.name] = entity
        return [Entity(e.name, e.entity_type, list(e.observations)) for e in added]

    def create_relations(self, relations: list[Relation]) -> list[Relation]:
        batch = list(dict.fromkeys(relations))
        self._require(name for r in batch for name in (r.source, r.target))
        added = [r for r in batch if r not in self._relation_set]
        self.relations.extend(added)
        self._relation_set.update(added)
        return added

    def add_observations(self, additions: list[ObservationAddition]) -> list[AddedObservations]:
        self._require(a.entity_name for a in additions)
        results = []
        for addition in additions:
            entity = self._by_name[addition.entity_name]
            present = set(entity.observations)
            new = [text for text in unique(addition.contents) if text not in present]
            entity.observations.extend(new)
            results.append(AddedObservations(addition.entity_name, new))
        return results

    def delete_entities(self, names: list[str]) -> bool:
        doomed = set(names)
        before = (len(self.entities), len(self.relations))
        self.entities = [e for e in self.entities if e.name not in doomed]
        self.relations = [r for r in self.relations if r.source not in doomed and r.target not in doomed]
        for name in doomed:
            self._by_name.pop(name, None)
        self._relation_set = set(self.relations)
        return before != (len(self.entities), len(self.relations))

    def delete_observations(self, deletions: list[ObservationDeletion]) -> bool:
        changed = False
        for deletion in deletions:
            doomed = set(deletion.observations)
            for entity in self.entities:
                if entity.name != deletion.entity_name:
                    continue
                kept = [text for text in entity.observations if text not in doomed]
                changed = changed or len(kept) != len(entity.observations)
                entity.observations[:] = kept
                break
        return changed

    def delete_relations(self, relations: list[Relation]) -> bool:
        doomed = set(relations)
        before = len(self.relations)
        self.relations = [r for r in self.relations if r not in doomed]
        self._relation_set -= doomed
        return before != len(self.relations)

    def merge_graph(self, graph: KnowledgeGraph) -> MergeReport:
        """See `MemoryStore.merge_graph`: no endpoint checks, observations merged by name."""
        report = MergeReport()
        for incoming in graph.entities:
            entity = self._by_name.get(incoming.name)
            if entity is None:
                entity = Entity(incoming.name, incoming.entity_type, [])
                self.entities.append(entity)
                self._by_name[entity.name] = entity
                report.entities_added += 1
            present = set(entity.observations)
            new = [text for text in unique(incoming.observations) if text not in present]
            entity.observations.extend(new)
            report.observations_added += len(new)
        for relation in graph.relations:
            if relation not in self._relation_set:
                self.relations.append(relation)
                self._relation_set.add(relation)
                report.relations_added += 1
        return report

    def search_nodes(self, query: str) -> KnowledgeGraph:
        needle = query.lower()
        return self._subgraph([e for e in self.entities if matches(e, needle)])

    def open_nodes(self, names: list[str]) -> KnowledgeGraph:
        wanted = set(names)
        return self._subgraph([e for e in self.entities if e.name in wanted])

    def _subgraph(self, entities: list[Entity]) -> KnowledgeGraph:
        names = {e.name for e in entities}
        relations = [r for r in self.relations if r.source in names or r.target in names]
        return KnowledgeGraph(entities=entities, relations=relations)
