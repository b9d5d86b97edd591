"""`MemoryManager`: the one API an agent uses to remember observations and recall them.

    manager.write("saw a red ball on the table", pose=(1.2, 3.5, 1.57), mission="m-2025-10-15-1")
    result = manager.recall("where did we see the red ball?")
    result.answer      # "On the table in the living room during mission m-2025-10-15-1 [1]."
    result.citations   # ["r3f9a1c2e4b5d6a"]: [1] is that record

Writing: a model (adapter, or the base model with a strict prompt) drafts the record; a draft
that stays invalid falls back to rules; with no model, rules write it. Recalling: hybrid search
within the current mission (all missions when asked), the records that fit the token budget
become numbered evidence, a model answers citing them (extractive answer without a model).
Which adapter drafts and which answers: `adapter_mode` (none, writing, recall, auto; default
$ADAPTER_MODE, else auto), per manager and per call (memlora.routing). Every write and
recall appends one trace line. `SkipManager` is the same API with memory off.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memlora.routing import choose_mode, role_for
from memlora.records import answer as answering
from memlora.records import writer
from memlora.records.chat import ChatModel
from memlora.records.errors import RecordsError
from memlora.records.schema import (
    MemoryRecord,
    Pose,
    RecordDraft,
    RecordValidationError,
    build_record,
    problems_of,
    validate_draft,
    validate_record,
)
from memlora.records.store import Hit, PurgeReport, RecordFilter, RecordStore, SearchMode
from memlora.records.traces import TraceLog

log = logging.getLogger("memlora.records")

MAX_K = 100
DEFAULT_K = 5
DEFAULT_BUDGET = 512  # evidence tokens: room for the default k records with some to spare
WRITE_MAX_TOKENS = 160
ANSWER_MAX_TOKENS = 96
QuotaOrder = Literal["oldest", "least_recalled"]


def coerce_pose(value: Any, where: str = "pose") -> Pose | None:
    """A pose from a Pose, a {x, y, yaw} dict, an (x, y, yaw) sequence or an "x,y,yaw" string."""
    if value is None or isinstance(value, Pose):
        return value
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise RecordValidationError([(where, f"must be three numbers X,Y,YAW, got {value!r}")], "observation") from None
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise RecordValidationError([(where, f"must be three numbers (x, y, yaw), got {len(value)}")], "observation")
        value = {"x": value[0], "y": value[1], "yaw": value[2]}
    if isinstance(value, dict):
        try:
            return Pose.model_validate(
                {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
            )
        except ValidationError as error:
            raise RecordValidationError([(f"{where}.{f}", p) for f, p in problems_of(error)], "observation") from None
    raise RecordValidationError([(where, f"must be x,y,yaw, got {type(value).__name__}")], "observation")


class Observation(BaseModel):
    """What an agent hands to `write`: raw text plus whatever context it knows for sure."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000, description="the raw observation, e.g. 'saw a red ball on the table'")
    pose: Any = Field(default=None, description="(x, y, yaw), {x, y, yaw} or 'x,y,yaw'")
    mission: str | None = Field(default=None, description="mission id; default: the manager's current mission")
    tags: list[str] = Field(default_factory=list, description="extra kind:value tags to add")
    timestamp: float | None = Field(default=None, description="Unix seconds; default: now")
    event: str | None = Field(default=None, description="force this event instead of the writer's choice")


@dataclass
class WriteResult:
    record: MemoryRecord | None
    stored: bool  # False when memory is off or the same record was already stored
    method: str  # model | rules | record | skipped
    attempts: list[writer.Attempt] = field(default_factory=list)
    duplicate: bool = False
    purged: list[str] = field(default_factory=list)  # ids a quota removed after this write

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored, "duplicate": self.duplicate, "method": self.method,
            "record": None if self.record is None else self.record.model_dump(),
            "attempts": [a.trace() for a in self.attempts], "purged": self.purged,
        }


@dataclass
class RecallRequest:
    question: str
    k: int = DEFAULT_K
    token_budget: int = DEFAULT_BUDGET
    mission: str | None = None
    across_missions: bool = False
    since: float | None = None
    until: float | None = None
    tags: tuple[str, ...] = ()
    mode: SearchMode = "hybrid"
    expected_ids: list[str] | None = None  # gold ids, for evaluation: recorded in the trace for success@k
    missions: tuple[str, ...] | None = None  # an explicit set of missions (e.g. one robot's), instead of `mission`


@dataclass
class RecallResult:
    answer: str
    citations: list[str]  # record ids; citations[i] is what the answer's [numbers[i]] points at
    numbers: list[int]
    hits: list[Hit]
    evidence: list[MemoryRecord]
    trace: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [{"n": n, "id": i} for n, i in zip(self.numbers, self.citations)],
            "evidence": [dict(answering.summary(r), n=n) for n, r in enumerate(self.evidence, 1)],
            "trace": self.trace,
        }


@dataclass(frozen=True)
class Quota:
    """Quotas applied after every stored write: `max_per_mission` to the written record's mission,
    `max_total` to the whole store (configuring it is asking for that scope)."""

    max_per_mission: int | None = None
    max_total: int | None = None
    order: QuotaOrder = "oldest"


class MemoryManager:
    """Writes and recalls memory records on one store, with one writer/answerer model (or none)."""

    backend = "local"

    def __init__(
        self,
        store: RecordStore,
        model: ChatModel | None = None,
        trace: TraceLog | str | Path | None = None,
        mission: str | None = None,
        quota: Quota | None = None,
        write_attempts: int = 2,
        backend: str = "local",
        clock: Callable[[], float] = time.time,
        adapter_mode: str | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.trace = TraceLog(trace) if isinstance(trace, (str, Path)) else trace
        self.mission = mission
        self.quota = quota
        self.write_attempts = max(1, write_attempts)
        self.write_max_tokens = WRITE_MAX_TOKENS
        self.answer_max_tokens = ANSWER_MAX_TOKENS
        self.backend = backend
        self.clock = clock
        self.adapter_mode = choose_mode(adapter_mode)

    def _route(self, task: str, adapter_mode: str | None) -> tuple[str, str | None]:
        """The mode of this call (its own, else the manager's) and the adapter role it gives `task`."""
        mode = choose_mode(adapter_mode or self.adapter_mode)
        return mode, role_for(mode, task)

    def _source(self, role: str | None) -> str | None:
        """Who wrote or answered: adapter:<name> when an adapter did, else the model's name."""
        if self.model is None:
            return None
        adapter = self.model.adapter_for(role)
        if not adapter:
            return self.model.name
        return re.sub(r"[^a-z0-9_.:/+\-]", "_", f"adapter:{adapter}".lower())[:64]  # the schema's source pattern

    # -- writing -------------------------------------------------------------------------------

    def write(self, observation: str, pose: Any = None, mission: str | None = None, tags: Sequence[str] = (),
              timestamp: float | None = None, event: str | None = None, adapter_mode: str | None = None) -> WriteResult:
        """Turns one raw observation into a record and stores it."""
        return self.write_many([Observation(text=observation, pose=pose, mission=mission, tags=list(tags),
                                            timestamp=timestamp, event=event)], adapter_mode=adapter_mode)[0]

    def write_many(self, observations: Sequence[Observation | dict[str, Any]],
                   adapter_mode: str | None = None) -> list[WriteResult]:
        """Writes several observations; the model drafts them as one batch."""
        started = time.perf_counter()
        mode, role = self._route("write", adapter_mode)
        parsed = [self._observation(o, i) for i, o in enumerate(observations)]
        contexts = []
        for index, obs in enumerate(parsed):
            text, text_pose, text_mission = writer.prepare_observation(obs.text)
            pose = coerce_pose(obs.pose, f"observations[{index}].pose" if len(parsed) > 1 else "pose") or text_pose
            contexts.append((text, pose, obs.mission or text_mission or self.mission))
        drafts, attempts, methods = self._drafts([c[0] for c in contexts], role)
        records = []
        for index, (obs, (_, pose, mission), draft, method) in enumerate(zip(parsed, contexts, drafts, methods)):
            where = f"observations[{index}]" if len(parsed) > 1 else "observation"
            draft = self._amend(draft, obs, where)
            source = self._source(role) if method == "model" and self.model is not None else "rules"
            timestamp = self.clock() if obs.timestamp is None else obs.timestamp
            try:
                records.append(build_record(draft, mission_id=mission, timestamp=timestamp, source=source, pose=pose))
            except RecordValidationError as error:
                raise RecordValidationError(error.problems, where) from None
        added = self.store.add(records)
        results = []
        for record, is_new, tries, method in zip(records, added, attempts, methods):
            purged = self._apply_quota(record) if is_new else []
            results.append(WriteResult(record, is_new, method, tries, duplicate=not is_new, purged=purged))
        elapsed = (time.perf_counter() - started) * 1000 / max(1, len(results))
        for obs, result in zip(parsed, results):
            self._trace_write(obs.text, result, elapsed, mode, role)
        return results

    def add_records(self, records: Iterable[MemoryRecord | dict[str, Any]]) -> list[bool]:
        """Stores finished records as they are (import, generated scenes); returns which were new."""
        checked = [validate_record(r, f"records[{i}]") for i, r in enumerate(records)]
        return self.store.add(checked)

    @staticmethod
    def _observation(value: Observation | dict[str, Any], index: int) -> Observation:
        if isinstance(value, Observation):
            return value
        try:
            return Observation.model_validate(value)
        except ValidationError as error:
            raise RecordValidationError(problems_of(error), f"observations[{index}]") from None

    def _drafts(self, texts: list[str], role: str | None = None
                ) -> tuple[list[RecordDraft], list[list[writer.Attempt]], list[str]]:
        """Model drafts with one corrective retry; rules for whatever is still invalid."""
        drafts: list[RecordDraft | None] = [None] * len(texts)
        attempts: list[list[writer.Attempt]] = [[] for _ in texts]
        if self.model is not None:
            pending = list(range(len(texts)))
            conversations = {i: writer.write_messages(texts[i]) for i in pending}
            for _ in range(self.write_attempts):
                if not pending:
                    break
                replies = self.model.complete([conversations[i] for i in pending], self.write_max_tokens, role=role)
                still = []
                for i, reply in zip(pending, replies):
                    draft, attempt = writer.judge(reply)
                    attempts[i].append(attempt)
                    log.debug("write attempt: json_valid=%s record_valid=%s", attempt.json_valid, attempt.record_valid)
                    if draft is not None:
                        drafts[i] = draft
                    else:
                        conversations[i] = writer.write_messages(texts[i], "; ".join(attempt.problems), reply)
                        still.append(i)
                pending = still
            for i in pending:
                log.info("the model's record stayed invalid after %d attempts; writing it by rules", len(attempts[i]))
        methods = ["model" if d is not None else "rules" for d in drafts]
        final = [d if d is not None else writer.rule_draft(t) for d, t in zip(drafts, texts)]
        return final, attempts, methods

    @staticmethod
    def _amend(draft: RecordDraft, obs: Observation, where: str) -> RecordDraft:
        """Applies the caller's forced event and extra tags (validated like any draft)."""
        if not obs.tags and obs.event is None:
            return draft
        data = draft.model_dump()
        data["tags"] = list(dict.fromkeys([*data["tags"], *obs.tags]))
        if obs.event is not None:
            data["event"] = obs.event
        data.pop("pose", None)
        return validate_draft(data, where)

    def _apply_quota(self, record: MemoryRecord) -> list[str]:
        """The per-mission cap on the written record's mission; the total cap store-wide. The record
        just written is never the one removed."""
        if self.quota is None:
            return []
        deleted: list[str] = []
        if self.quota.max_per_mission is not None:
            deleted += self.store.enforce_quota(max_per_mission=self.quota.max_per_mission, order=self.quota.order,
                                                scope=RecordFilter(missions=(record.mission_id or "",)),
                                                keep=(record.id,)).deleted
        if self.quota.max_total is not None:
            deleted += self.store.enforce_quota(max_total=self.quota.max_total, order=self.quota.order,
                                                keep=(record.id,)).deleted
        return deleted

    def _trace_write(self, observation: str, result: WriteResult, latency_ms: float, mode: str,
                     role: str | None) -> None:
        if self.trace is None:
            return
        self.trace.append({
            "op": "write", "time": time.time(), "backend": self.backend, "observation": observation[:500],
            "method": result.method, "attempts": [a.trace() for a in result.attempts],
            "record_id": None if result.record is None else result.record.id, "stored": result.stored,
            "duplicate": result.duplicate, "purged": result.purged, "model": self._model_name(),
            "adapter": None if self.model is None else self.model.adapter_for(role), "adapter_mode": mode,
            "latency_ms": round(latency_ms, 3),
        })

    # -- recalling -----------------------------------------------------------------------------

    def recall(self, question: str, k: int = DEFAULT_K, token_budget: int = DEFAULT_BUDGET, mission: str | None = None,
               across_missions: bool = False, since: float | None = None, until: float | None = None,
               tags: Sequence[str] = (), mode: SearchMode = "hybrid", expected_ids: list[str] | None = None,
               missions: Sequence[str] | None = None, adapter_mode: str | None = None) -> RecallResult:
        """Retrieves, answers with citations, and traces one question."""
        request = RecallRequest(question, k, token_budget, mission, across_missions, since, until, tuple(tags), mode,
                                expected_ids, None if missions is None else tuple(missions))
        return self.recall_many([request], adapter_mode=adapter_mode)[0]

    def scope(self, request: RecallRequest) -> RecordFilter:
        """Within the asked mission, else the current one; every mission when asked (or when there is none)."""
        if request.across_missions:
            missions = None
        elif request.missions is not None:
            missions = request.missions
        elif request.mission is not None:
            missions = (request.mission,)
        elif self.mission is not None:
            missions = (self.mission,)
        else:
            missions = None
        return RecordFilter(missions=missions, since=request.since, until=request.until, tags=request.tags)

    def recall_many(self, requests: Sequence[RecallRequest], adapter_mode: str | None = None) -> list[RecallResult]:
        """Several questions; the model answers them as one batch."""
        adapter_mode, role = self._route("recall", adapter_mode)
        for index, request in enumerate(requests):
            self._check_request(request, index if len(requests) > 1 else None)
        started = [time.perf_counter() for _ in requests]
        found: list[tuple[list[Hit], answering.Evidence, float]] = []
        count = self.model.count_tokens if self.model is not None else _bundled_count
        for request in requests:
            began = time.perf_counter()
            hits = self.store.search(request.question, request.k, request.mode, self.scope(request))
            evidence = answering.fit_budget(hits, request.token_budget, count)
            found.append((hits, evidence, (time.perf_counter() - began) * 1000))
        answer_started = time.perf_counter()
        answers = [answering.NOT_FOUND] * len(requests)
        by_model = [i for i, (_, evidence, _) in enumerate(found) if evidence.records and self.model is not None]
        if by_model:
            replies = self.model.complete(  # type: ignore[union-attr]
                [answering.answer_messages(requests[i].question, found[i][1]) for i in by_model], self.answer_max_tokens,
                role=role,
            )
            for i, reply in zip(by_model, replies):
                answers[i] = answering.clean_answer(reply) or answering.NOT_FOUND
        if self.model is None:
            answers = [answering.extractive_answer(hits, evidence) for hits, evidence, _ in found]
        answer_ms = (time.perf_counter() - answer_started) * 1000 / max(1, len(requests))
        results = []
        for request, (hits, evidence, retrieve_ms), answer, began in zip(requests, found, answers, started):
            citations = answering.parse_citations(answer, evidence.records)
            self.store.mark_recalled([r.id for r in evidence.records])
            prompt_tokens = None
            if evidence.records and self.model is not None:
                prompt_tokens = sum(count(m["content"]) for m in answering.answer_messages(request.question, evidence))
            trace = {
                "op": "recall", "time": time.time(), "backend": self.backend,
                "request": {
                    "question": request.question, "k": request.k, "token_budget": request.token_budget,
                    "mission": request.mission, "across_missions": request.across_missions, "since": request.since,
                    "until": request.until, "tags": list(request.tags), "mode": request.mode,
                    **({"missions": list(request.missions)} if request.missions is not None else {}),
                },
                "scope_missions": None if self.scope(request).missions is None else list(self.scope(request).missions or ()),
                "retrieved": [hit.trace() for hit in hits],
                "evidence_ids": [r.id for r in evidence.records],
                "dropped_for_budget": evidence.dropped,
                "evidence_tokens": evidence.tokens, "prompt_tokens": prompt_tokens,
                "token_budget": request.token_budget, "within_budget": evidence.within_budget,
                "token_counter": self.model.token_counter if self.model is not None else "all-MiniLM-L6-v2 wordpiece",
                "answer": answer, "citations": citations.ids, "citation_numbers": citations.numbers,
                "invalid_citations": citations.invalid,
                "answered_by": self._source(role) if self.model is not None and evidence.records else
                ("extractive" if self.model is None else "none (no evidence)"),
                "adapter": None if self.model is None else self.model.adapter_for(role), "adapter_mode": adapter_mode,
                "latency_ms": {
                    "retrieve": round(retrieve_ms, 3),
                    "answer": round(answer_ms, 3),
                    "total": round((time.perf_counter() - began) * 1000, 3) if len(requests) == 1
                    else round(retrieve_ms + answer_ms, 3),
                },
            }
            if request.expected_ids is not None:
                trace["expected_ids"] = list(request.expected_ids)
            if self.trace is not None:
                self.trace.append(trace)
            results.append(RecallResult(answer, citations.ids, citations.numbers, hits, evidence.records, trace))
        return results

    @staticmethod
    def _check_request(request: RecallRequest, index: int | None) -> None:
        where = "recall" if index is None else f"requests[{index}]"
        if not request.question.strip():
            raise RecordsError(f"{where}.question: must not be empty")
        if not 1 <= request.k <= MAX_K:
            raise RecordsError(f"{where}.k: must be between 1 and {MAX_K}, got {request.k}")
        if request.token_budget < 1:
            raise RecordsError(f"{where}.token_budget: must be at least 1 token, got {request.token_budget}")
        if request.since is not None and request.until is not None and request.since >= request.until:
            raise RecordsError(f"{where}.since: must be before until ({request.since} >= {request.until})")

    def _model_name(self) -> str | None:
        return None if self.model is None else self.model.name

    # -- lifecycle -----------------------------------------------------------------------------

    def purge(self, *, older_than: float | None = None, max_per_mission: int | None = None,
              max_total: int | None = None, order: QuotaOrder = "oldest", mission: str | None = None,
              dry_run: bool = False) -> PurgeReport:
        """Retention by age (seconds) and/or quotas, deleting only inside `mission` when one is named."""
        if older_than is None and max_per_mission is None and max_total is None:
            raise RecordsError("purge needs --older-than, --max-per-mission or --max-total")
        if older_than is not None and older_than < 0:
            raise RecordsError(f"older_than must be 0 seconds or more, got {older_than}")
        scope = RecordFilter(missions=None if mission is None else (mission,))
        report = PurgeReport()
        if older_than is not None:
            report = self.store.purge_older_than(self.clock() - older_than, scope, dry_run)
        if max_per_mission is not None or max_total is not None:
            quota = self.store.enforce_quota(max_per_mission=max_per_mission, max_total=max_total, order=order,
                                             scope=scope, dry_run=dry_run)
            report = PurgeReport(report.deleted + [i for i in quota.deleted if i not in report.deleted], quota.kept)
        return report

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> MemoryManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bundled_count(text: str) -> int:
    from memlora.records.embedding import bundled_token_count

    return bundled_token_count(text)


MEMORY_OFF = "Memory is off (MEMORY_BACKEND=skip); nothing was recalled."


class SkipManager:
    """Memory off: writes are dropped with a logged notice, recalls say memory is off. No files."""

    backend = "skip"
    mission: str | None = None

    def write(self, observation: str, *args: Any, **kwargs: Any) -> WriteResult:
        return self.write_many([observation])[0]  # adapter_mode and the rest: nothing to route

    def write_many(self, observations: Sequence[Any], adapter_mode: str | None = None) -> list[WriteResult]:
        log.warning("memory is off (MEMORY_BACKEND=skip): %d observation(s) dropped", len(observations))
        return [WriteResult(None, False, "skipped") for _ in observations]

    def add_records(self, records: Iterable[Any]) -> list[bool]:
        records = list(records)
        log.warning("memory is off (MEMORY_BACKEND=skip): %d record(s) dropped", len(records))
        return [False] * len(records)

    def recall(self, question: str, *args: Any, **kwargs: Any) -> RecallResult:
        return self.recall_many([RecallRequest(question)])[0]

    def recall_many(self, requests: Sequence[RecallRequest], adapter_mode: str | None = None) -> list[RecallResult]:
        log.warning("memory is off (MEMORY_BACKEND=skip): recall answered without memory")
        return [RecallResult(MEMORY_OFF, [], [], [], [], {"op": "recall", "backend": "skip", "answer": MEMORY_OFF})
                for _ in requests]

    def purge(self, **kwargs: Any) -> PurgeReport:
        raise RecordsError("memory is off (MEMORY_BACKEND=skip): there are no records to purge")

    def close(self) -> None:
        pass

    def __enter__(self) -> SkipManager:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
