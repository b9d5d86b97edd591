"""The optional memory-record tools: `records_write`, `records_recall`, `records_purge`.

Off by default (`memlora serve --records` turns them on), so the published tool list stays the
nine reference tools unless asked. Their input schemas are generated from the pydantic models
below, which are the single source of truth for them; arguments are validated by the same
models, and every problem the records layer explains comes back as a tool error naming the field.
The server lists the `Tool` definitions below as they are, beside the nine (memlora.server.app).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
from mcp.types import CallToolResult, Tool, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memlora.records.errors import RecordsError
from memlora.records.schema import Pose, RecordValidationError, problems_of
from memlora.server.app import read_json_text, tool_error, tool_result

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


def _write(manager: Any, args: WriteArgs) -> dict[str, Any]:
    return manager.write(args.observation, pose=args.pose, mission=args.mission, tags=args.tags,
                         timestamp=args.timestamp).as_dict()


def _recall(manager: Any, args: RecallArgs) -> dict[str, Any]:
    return manager.recall(args.question, k=args.k, token_budget=args.token_budget, mission=args.mission,
                          across_missions=args.across_missions, since=args.since, until=args.until,
                          tags=args.tags).as_dict()


def _purge(manager: Any, args: PurgeArgs) -> dict[str, Any]:
    report = manager.purge(older_than=args.older_than_seconds, max_per_mission=args.max_per_mission,
                           max_total=args.max_total, order=args.order, mission=args.mission, dry_run=args.dry_run)
    return {"deleted": report.deleted, "kept": report.kept, "dry_run": args.dry_run}


RECORD_TOOLS: list[tuple[Tool, type[BaseModel], Callable[[Any, Any], dict[str, Any]]]] = [
    (Tool(name="records_write", title="Write a memory record",
          description="Turn one observation (with optional pose, mission, tags, time) into a normalized memory "
                      "record and store it. Returns the record.",
          input_schema=_schema(WriteArgs),
          annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True,
                                      openWorldHint=False)),
     WriteArgs, _write),
    (Tool(name="records_recall", title="Recall from memory records",
          description="Answer a question from the memory records (the current mission unless told otherwise), "
                      "citing them as [1], [2]. Returns the answer, the cited record ids and the evidence.",
          input_schema=_schema(RecallArgs),
          # not read-only: it counts recalls (least-recalled quotas) and appends a trace line
          annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)),
     RecallArgs, _recall),
    (Tool(name="records_purge", title="Purge memory records",
          description="Delete records by age and/or quotas, only inside the mission given (if any).",
          input_schema=_schema(PurgeArgs),
          annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True,
                                      openWorldHint=False)),
     PurgeArgs, _purge),
]


def record_tools(manager: Any) -> dict[str, tuple[Tool, Callable[[dict[str, Any]], Awaitable[CallToolResult]]]]:
    """Each record tool's definition and body over one `MemoryManager` (or `SkipManager`)."""

    def body(model: type[BaseModel], run: Callable[[Any, Any], dict[str, Any]]) -> Any:
        async def call(arguments: dict[str, Any]) -> CallToolResult:
            # What the tool does not take is ignored and null means "the default", as before.
            given = {k: v for k, v in read_json_text(arguments).items() if k in model.model_fields and v is not None}

            def work() -> dict[str, Any]:
                try:
                    args = model.model_validate(given)
                except ValidationError as error:
                    raise RecordValidationError(problems_of(error), "arguments") from None
                return run(manager, args)

            # Unlike the graph tools these may run a model for seconds: off the event loop, so the
            # server keeps answering other requests meanwhile.
            try:
                value = await anyio.to_thread.run_sync(work)
            except (RecordsError, RecordValidationError) as error:
                return tool_error(str(error))
            return tool_result(value, value)

        return call

    return {tool.name: (tool, body(model, run)) for tool, model, run in RECORD_TOOLS}
