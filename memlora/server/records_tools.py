"""The optional memory-record tools: `records_write`, `records_recall`, `records_purge`.

Off by default (`memlora serve --records` turns them on), so the published tool list stays the
nine reference tools unless asked. Their input schemas are generated from the pydantic models
below, which are the single source of truth for them; arguments are validated by the same
models, and every problem the records layer explains comes back as a tool error naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memlora.records.errors import RecordsError
from memlora.records.schema import Pose, RecordValidationError, problems_of

_STRICT = ConfigDict(extra="forbid")


class WriteArgs(BaseModel):
    model_config = _STRICT
    observation: str = Field(min_length=1, max_length=2000,
                             description="What the agent observed, in words, e.g. 'saw a red ball on the table'")
    pose: Pose | None = Field(default=None, description="Where the agent was: x, y in metres, yaw in radians [-pi, pi]")
    mission: str | None = Field(default=None, description="Mission id; default: the server's current mission")
    tags: list[str] = Field(default_factory=list, description="Extra kind:value tags, e.g. room:kitchen")
    timestamp: float | None = Field(default=None, description="When it happened, Unix seconds; default: now")


class RecallArgs(BaseModel):
    model_config = _STRICT
    question: str = Field(min_length=1, max_length=1000, description="The question, e.g. 'where did we see the red ball?'")
    k: int = Field(default=5, ge=1, le=100, description="How many records to retrieve")
    token_budget: int = Field(default=512, ge=1, description="Token budget for the evidence the answer may use")
    mission: str | None = Field(default=None, description="Search this mission only")
    across_missions: bool = Field(default=False, description="Search every mission")
    since: float | None = Field(default=None, description="Only records at or after this Unix time")
    until: float | None = Field(default=None, description="Only records before this Unix time")
    tags: list[str] = Field(default_factory=list, description="Only records with all these tags")


class PurgeArgs(BaseModel):
    model_config = _STRICT
    older_than_seconds: float | None = Field(default=None, ge=0, description="Delete records older than this")
    max_per_mission: int | None = Field(default=None, ge=0, description="Keep at most this many records per mission")
    max_total: int | None = Field(default=None, ge=0, description="Delete in scope until the store holds at most this many")
    order: Literal["oldest", "least_recalled"] = Field(default="oldest", description="Which records a quota deletes first")
    mission: str | None = Field(default=None, description="Delete only inside this mission")
    dry_run: bool = Field(default=False, description="Report what would be deleted, delete nothing")


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}


def _ok(value: dict[str, Any]) -> CallToolResult:
    from memlora.server.app import pretty_json

    return CallToolResult(content=[TextContent(type="text", text=pretty_json(value))], structured_content=value)


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _parse(model: type[BaseModel], arguments: dict[str, Any]) -> Any:
    try:
        return model.model_validate({k: v for k, v in arguments.items() if v is not None})
    except ValidationError as error:
        raise RecordValidationError(problems_of(error), "arguments") from None


class RecordTools:
    """The tool bodies over one `MemoryManager` (or `SkipManager`)."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    async def _run(self, call: Callable[[], dict[str, Any]]) -> CallToolResult:
        # Unlike the graph tools these may run a model for seconds: off the event loop, so the
        # server keeps answering other requests meanwhile.
        import anyio

        try:
            return _ok(await anyio.to_thread.run_sync(call))
        except (RecordsError, RecordValidationError) as error:
            return _error(str(error))

    async def records_write(self, observation: Any = None, pose: Any = None, mission: Any = None, tags: Any = None,
                            timestamp: Any = None) -> CallToolResult:
        def call() -> dict[str, Any]:
            args = _parse(WriteArgs, {"observation": observation, "pose": pose, "mission": mission, "tags": tags,
                                      "timestamp": timestamp})
            result = self.manager.write(args.observation, pose=args.pose, mission=args.mission, tags=args.tags,
                                        timestamp=args.timestamp)
            return result.as_dict()

        return await self._run(call)

    async def records_recall(self, question: Any = None, k: Any = None, token_budget: Any = None, mission: Any = None,
                             across_missions: Any = None, since: Any = None, until: Any = None,
                             tags: Any = None) -> CallToolResult:
        def call() -> dict[str, Any]:
            args = _parse(RecallArgs, {"question": question, "k": k, "token_budget": token_budget, "mission": mission,
                                       "across_missions": across_missions, "since": since, "until": until, "tags": tags})
            result = self.manager.recall(args.question, k=args.k, token_budget=args.token_budget, mission=args.mission,
                                         across_missions=args.across_missions, since=args.since, until=args.until,
                                         tags=args.tags)
            return result.as_dict()

        return await self._run(call)

    async def records_purge(self, older_than_seconds: Any = None, max_per_mission: Any = None, max_total: Any = None,
                            order: Any = None, mission: Any = None, dry_run: Any = None) -> CallToolResult:
        def call() -> dict[str, Any]:
            args = _parse(PurgeArgs, {"older_than_seconds": older_than_seconds, "max_per_mission": max_per_mission,
                                      "max_total": max_total, "order": order, "mission": mission, "dry_run": dry_run})
            report = self.manager.purge(older_than=args.older_than_seconds, max_per_mission=args.max_per_mission,
                                        max_total=args.max_total, order=args.order, mission=args.mission,
                                        dry_run=args.dry_run)
            return {"deleted": report.deleted, "kept": report.kept, "dry_run": args.dry_run}

        return await self._run(call)


RECORD_TOOL_SPECS: dict[str, tuple[type[BaseModel], str, str, ToolAnnotations]] = {
    "records_write": (WriteArgs, "Write a memory record",
                      "Turn one observation (with optional pose, mission, tags, time) into a normalized memory record "
                      "and store it. Returns the record.",
                      ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)),
    "records_recall": (RecallArgs, "Recall from memory records",
                       "Answer a question from the memory records (the current mission unless told otherwise), citing "
                       "them as [1], [2]. Returns the answer, the cited record ids and the evidence.",
                       # not read-only: it counts recalls (least-recalled quotas) and appends a trace line
                       ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)),
    "records_purge": (PurgeArgs, "Purge memory records",
                      "Delete records by age and/or quotas, only inside the mission given (if any).",
                      ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)),
}


def record_tools(manager: Any) -> list[Tool]:
    bodies = RecordTools(manager)
    tools = []
    for name, (model, title, description, annotations) in RECORD_TOOL_SPECS.items():
        tool = Tool.from_function(getattr(bodies, name), name=name, title=title, description=description,
                                  annotations=annotations)
        tool.parameters = _schema(model)
        tools.append(tool)
    return tools
