"""Which LoRA adapter serves which memory task: `ADAPTER_MODE`, and dynamic or merged serving.

memlora keeps one adapter per task and routes each request to the adapter of its task:

| task | adapter role | shipped folder |
| --- | --- | --- |
| `write` (an observation becomes a record) | `writing` | `adapters/<model>-records-writing/` |
| `recall` (an answer from retrieved records) | `recall` | `adapters/<model>-records-recall/` |
| `graph` (the knowledge-graph tools in a chat) | `memory` | `adapters/<model>-memory/` |

`ADAPTER_MODE` (or a per-call `adapter_mode`) says which of them are on: `none` (the base model
for every task, prompted strictly), `writing` (the writing adapter for writes, the base model for
the rest), `recall` (the recall adapter for recalls, the base model for the rest) or `auto` (the
default: every task its own adapter, where one is loaded). A role whose adapter is not loaded
falls back to the base model, so `auto` works before any records adapter is trained.

Serving: `dynamic` loads every adapter on one copy of the base model and switches per batch
(`LoadedModel.adapter`); `merged` merges each adapter into its own copy of the base model (PEFT
`merge_and_unload`, token rows included) and serves each copy as a model of its own, with the
base model loaded only when a request needs it (memlora.models.routed). docs/records.md compares
the two.

This module is the policy alone and imports nothing heavy: the records manager reads it on every
call, and `memlora records purge` must not pay for importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

AdapterMode = Literal["none", "writing", "recall", "auto"]
Task = Literal["write", "recall", "graph"]
Serving = Literal["dynamic", "merged"]

MODE_ENV = "ADAPTER_MODE"
MODES: tuple[str, ...] = ("none", "writing", "recall", "auto")
TASKS: tuple[str, ...] = ("write", "recall", "graph")
SERVINGS: tuple[str, ...] = ("dynamic", "merged")
ROLE_OF_TASK: dict[str, str] = {"write": "writing", "recall": "recall", "graph": "memory"}
# the folder suffix each role's shipped adapter has under adapters/<model>-<suffix>
ROLE_FOLDERS: dict[str, str] = {"writing": "records-writing", "recall": "records-recall", "memory": "memory"}
# the tasks each mode routes to their adapter; every other task gets the base model
MODE_TASKS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "writing": frozenset({"write"}),
    "recall": frozenset({"recall"}),
    "auto": frozenset(TASKS),
}


REPO_ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"  # = memlora.models.loading.REPO_ADAPTERS


class RoutingError(ValueError):
    """An adapter mode, task or serving that does not exist; the message lists the ones that do."""


def choose_mode(mode: str | None = None) -> AdapterMode:
    """The mode asked for, else $ADAPTER_MODE, else auto."""
    chosen = (mode or os.environ.get(MODE_ENV) or "auto").strip().lower()
    if chosen not in MODES:
        where = "adapter_mode" if mode else MODE_ENV
        raise RoutingError(f"{where}={chosen!r}: the adapter mode must be one of {', '.join(MODES)}")
    return chosen  # type: ignore[return-value]


def role_for(mode: str | None, task: str) -> str | None:
    """The adapter role that serves `task` under `mode` (None: the base model)."""
    if task not in TASKS:
        raise RoutingError(f"task {task!r}: must be one of {', '.join(TASKS)}")
    return ROLE_OF_TASK[task] if task in MODE_TASKS[choose_mode(mode)] else None


def shipped_adapter(model: str, role: str, root: Path | None = None) -> str | None:
    """The adapter memlora ships for `role` on a bundled model (adapters/<model>-<suffix>/), if any."""
    folder = (root or REPO_ADAPTERS) / f"{Path(model).name}-{ROLE_FOLDERS[role]}"
    return str(folder) if (folder / "adapter_config.json").exists() else None


def shipped_adapters(model: str, roles: tuple[str, ...] = ("writing", "recall", "memory"),
                     root: Path | None = None) -> dict[str, str]:
    """{role: folder} for every role of `roles` that has a shipped adapter."""
    found = {role: shipped_adapter(model, role, root) for role in roles}
    return {role: path for role, path in found.items() if path}


def check_serving(serving: str) -> Serving:
    if serving not in SERVINGS:
        raise RoutingError(f"serving {serving!r}: must be one of {', '.join(SERVINGS)}")
    return serving  # type: ignore[return-value]
