"""The nine memory tools and the resource as clients see them: names, titles, descriptions,
JSON schemas, hints.

Names, property names, shapes, required fields and annotations are those of the reference
memory server, so a client written against it works unchanged; the descriptions are memlora's
own wording. This module is the single source of truth for tool schemas in memlora: the server
lists these definitions as they are (tests/test_server_published.py holds them to a snapshot),
and tests/test_store_tools_schemas.py checks that the argument models in memlora.store.tools
accept exactly what these input schemas accept.
"""

from __future__ import annotations

from typing import Any

from mcp.types import Resource, Tool, ToolAnnotations

JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"


def _string(description: str | None = None) -> dict[str, Any]:
    return {"type": "string", **({"description": description} if description else {})}


def _strings(description: str | None = None) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, **({"description": description} if description else {})}


def _object(properties: dict[str, Any], *, closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(properties)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _entity(closed: bool) -> dict[str, Any]:
    return _object(
        {
            "name": _string("Unique name of the entity"),
            "entityType": _string("Kind of entity, e.g. person or place"),
            "observations": _strings("Short facts about the entity"),
        },
        closed=closed,
    )


def _relation(closed: bool) -> dict[str, Any]:
    return _object(
        {
            "from": _string("Name of the entity the relation starts at"),
            "to": _string("Name of the entity the relation points to"),
            "relationType": _string("Kind of relation, in active voice"),
        },
        closed=closed,
    )


def _top(properties: dict[str, Any], *, closed: bool = False) -> dict[str, Any]:
    schema = _object(properties, closed=closed)
    if not properties:
        del schema["required"]
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


_GRAPH_OUTPUT = _top(
    {"entities": {"type": "array", "items": _entity(True)}, "relations": {"type": "array", "items": _relation(True)}},
    closed=True,
)
_MESSAGE_OUTPUT = _top({"success": {"type": "boolean"}, "message": {"type": "string"}}, closed=True)


def _hints(*, read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=False
    )


_WRITE = _hints(read_only=False, destructive=False, idempotent=False)
_DELETE = _hints(read_only=False, destructive=True, idempotent=True)
_READ = _hints(read_only=True, destructive=False, idempotent=True)


def _tool(
    name: str, title: str, description: str, input_schema: dict[str, Any], output_schema: dict[str, Any],
    annotations: ToolAnnotations,
) -> Tool:
    return Tool(
        name=name, title=title, description=description, input_schema=input_schema, output_schema=output_schema,
        annotations=annotations,
    )


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        _tool(
            "create_entities",
            "Create Entities",
            "Add new entities to the knowledge graph; names already present are skipped",
            _top({"entities": {"type": "array", "items": _entity(False)}}),
            _top({"entities": {"type": "array", "items": _entity(True)}}, closed=True),
            _WRITE,
        ),
        _tool(
            "create_relations",
            "Create Relations",
            "Add directed relations between existing entities; use active voice for the relation type",
            _top({"relations": {"type": "array", "items": _relation(False)}}),
            _top({"relations": {"type": "array", "items": _relation(True)}}, closed=True),
            _WRITE,
        ),
        _tool(
            "add_observations",
            "Add Observations",
            "Append observations to entities that already exist",
            _top(
                {
                    "observations": {
                        "type": "array",
                        "items": _object(
                            {
                                "entityName": _string("Entity that receives the observations"),
                                "contents": _strings("Observation texts to append"),
                            }
                        ),
                    }
                }
            ),
            _top(
                {
                    "results": {
                        "type": "array",
                        "items": _object(
                            {"entityName": {"type": "string"}, "addedObservations": _strings()}, closed=True
                        ),
                    }
                },
                closed=True,
            ),
            _WRITE,
        ),
        _tool(
            "delete_entities",
            "Delete Entities",
            "Remove entities and every relation that touches them",
            _top({"entityNames": _strings("Names of the entities to remove")}),
            _MESSAGE_OUTPUT,
            _DELETE,
        ),
        _tool(
            "delete_observations",
            "Delete Observations",
            "Remove particular observations from entities",
            _top(
                {
                    "deletions": {
                        "type": "array",
                        "items": _object(
                            {
                                "entityName": _string("Entity that holds the observations"),
                                "observations": _strings("Observation texts to remove"),
                            }
                        ),
                    }
                }
            ),
            _MESSAGE_OUTPUT,
            _DELETE,
        ),
        _tool(
            "delete_relations",
            "Delete Relations",
            "Remove relations from the knowledge graph",
            _top({"relations": {"type": "array", "items": _relation(False), "description": "Relations to remove"}}),
            _MESSAGE_OUTPUT,
            _DELETE,
        ),
        _tool(
            "read_graph",
            "Read Graph",
            "Return the whole knowledge graph",
            _top({}),
            _GRAPH_OUTPUT,
            _READ,
        ),
        _tool(
            "search_nodes",
            "Search Nodes",
            "Find entities whose name, type or observations contain the query (case-insensitive)",
            _top({"query": _string("Text to look for in entity names, types and observations")}),
            _GRAPH_OUTPUT,
            _READ,
        ),
        _tool(
            "open_nodes",
            "Open Nodes",
            "Fetch entities by exact name, with the relations that touch them",
            _top({"names": _strings("Names of the entities to fetch")}),
            _GRAPH_OUTPUT,
            _READ,
        ),
    ]
}

RESOURCE_URI = "memory://knowledge-graph"
KNOWLEDGE_GRAPH = Resource(
    uri=RESOURCE_URI,
    name="knowledge-graph",
    title="Knowledge Graph",
    description="Every entity and relation in the memory",
    mime_type="application/json",
)
