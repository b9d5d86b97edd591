"""Runs gold calls against a real memlora store and returns what the server would answer.

The arguments go through the store's own validation (the same parsing the MCP server applies)
and the results have the server's shapes (app.py): lists of what was added, a plain success
message for deletions, a graph for reads. `memlora.agent.prompt.format_tool_result` renders them.
"""

from __future__ import annotations

from typing import Any

from memlora.store import validate
from memlora.store.base import MemoryStore
from memlora.store.graph import DEFAULT_LIMITS


class GoldCallError(RuntimeError):
    """A gold call failed against the store: a bug in the policy, never data to keep."""


def execute(store: MemoryStore, call: dict[str, Any]) -> Any:
    """One call's result payload, as the memlora server shapes it."""
    name, args, limits = call["name"], call["arguments"], DEFAULT_LIMITS
    try:
        if name == "create_entities":
            entities = validate.parse_entities(args.get("entities"))
            validate.check_entities(entities, limits)
            return [e.to_dict() for e in store.create_entities(entities)]
        if name == "create_relations":
            relations = validate.parse_relations(args.get("relations"))
            validate.check_relations(relations, limits)
            return [r.to_dict() for r in store.create_relations(relations)]
        if name == "add_observations":
            additions = validate.parse_additions(args.get("observations"))
            validate.check_additions(additions, limits)
            return [r.to_dict() for r in store.add_observations(additions)]
        if name == "delete_entities":
            store.delete_entities(validate.parse_names(args.get("entityNames"), "entityNames"))
            return "Entities deleted successfully"
        if name == "delete_observations":
            store.delete_observations(validate.parse_deletions(args.get("deletions")))
            return "Observations deleted successfully"
        if name == "delete_relations":
            store.delete_relations(validate.parse_relations(args.get("relations")))
            return "Relations deleted successfully"
        if name == "read_graph":
            return store.read_graph().to_dict()
        if name == "search_nodes":
            return store.search_nodes(validate.parse_query(args.get("query"))).to_dict()
        if name == "open_nodes":
            return store.open_nodes(validate.parse_names(args.get("names"), "names")).to_dict()
    except Exception as error:  # noqa: BLE001 - re-raised with the call attached
        raise GoldCallError(f"gold call {call} failed: {error}") from error
    raise GoldCallError(f"unknown tool {name!r}")
