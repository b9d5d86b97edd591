"""Dependencies inside memlora point one way: a layer imports only its own layer and those below.

Every import of every module counts, the ones inside functions too (memlora imports heavy
libraries lazily, so most of its cross-package imports are function-level). The layers, lowest
first, and why each sits where it does:

- foundation: the package itself, `files` (hashing helpers everyone may use), `routing` (which
  adapter serves which task: policy only) and `settings`
  (settings dataclasses as command-line options, the shared flags and their defaults).
- store: the knowledge-graph stores, and the record store of `memlora.records` (schema,
  SQLite store, embeddings, import/export, scenes): the MCP server's record tools read them.
- server: the MCP server over the stores.
- models: loading models and adapters, the chat formats of the model families, CPU inference,
  exporting adapters, llama.cpp as a runtime.
- agent: the system prompt, the tool protocol, the generation engine, the agent loop.
- records runtime: `records.chat`, `records.manager`, `records.backends`: the records manager
  writes and answers with a local model through the agent's engine.
- evaluation: episodes, the runner, scoring, and the llama.cpp check of exported adapters.
- data: the data generator checks its episodes with the evaluator's scoring.
- training: SFT and GRPO, on the generator's rows and the evaluator's episodes.
- api: the OpenAI-compatible server (the engine plus memory mode).
- commands: the command line (`cli`, `demo`, every `*.commands` module) and `testing` (the
  tiny model and tokenizer for tests): they assemble the layers and may import any of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "memlora"

# lowest first; a module belongs to the layer of its longest matching name (module or package)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("memlora", "memlora.files", "memlora.settings", "memlora.routing")),
    ("store", ("memlora.store", "memlora.records")),
    ("server", ("memlora.server",)),
    ("models", ("memlora.models",)),
    ("agent", ("memlora.agent",)),
    ("records runtime", ("memlora.records.chat", "memlora.records.manager", "memlora.records.backends")),
    ("evaluation", ("memlora.evaluation",)),
    ("data", ("memlora.data",)),
    ("training", ("memlora.training",)),
    ("api", ("memlora.api",)),
    ("commands", ("memlora.cli", "memlora.demo", "memlora.testing")),
]
RANK = {name: index for index, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    """The layer of a memlora module name; None for a name no layer claims."""
    if module.endswith(".commands"):
        return "commands"
    best, best_length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = name, len(prefix)
    if best == "foundation" and module not in LAYERS[0][1]:
        return None  # only the package itself and the listed modules, not whatever is new
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) for every memlora import in the file, at any depth, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from memlora.models import loading` imports the submodule memlora.models.loading
            found += [(node.lineno, f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
                      for alias in node.names]
    return [(line, name) for line, name in dict.fromkeys(found) if name == "memlora" or name.startswith("memlora.")]


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    unclaimed = sorted(module for module in MODULES if layer_of(module) is None)
    assert not unclaimed, f"give these modules a layer in LAYERS: {unclaimed}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for module, path in MODULES.items():
        own = layer_of(module)
        for line, target in imported_modules(path, module):
            theirs = layer_of(target)
            if own is not None and theirs is not None and RANK[theirs] > RANK[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {target} ({theirs})")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_the_checker_sees_function_level_and_from_package_imports(tmp_path: Path) -> None:
    """The test above cannot pass by not looking: nested and `from package import module` forms count."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from memlora.agent import loop\n    import memlora.evaluation.runner\n"
                      "    from . import export\n")
    found = imported_modules(source, "memlora.models.probe")
    assert [name for _, name in found] == ["memlora.agent.loop", "memlora.evaluation.runner", "memlora.models.export"]
    assert RANK[layer_of("memlora.agent.loop")] > RANK[layer_of("memlora.models.probe")]
    assert layer_of("memlora.records.chat") == "records runtime" and layer_of("memlora.records.schema") == "store"
    assert layer_of("memlora.server.commands") == "commands" and layer_of("memlora.newthing") is None
