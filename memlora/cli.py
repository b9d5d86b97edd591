"""The `memlora` command line.

Each subcommand lives beside the code it drives and is imported only when it runs, so
`memlora serve` never pays for importing torch.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

# command name -> ("module:attribute" of a click command, one-line help shown by --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("memlora.demo:demo", "Five sessions with the bundled model and its adapter, then recall questions."),
    "chat": ("memlora.agent.commands:chat", "Talk with a model that keeps its memory across sessions."),
    "replay": ("memlora.agent.commands:replay", "Play the user turns of episode files through the agent."),
    "serve": ("memlora.server.commands:serve", "Run the memory MCP server (stdio or streamable HTTP)."),
    "api": ("memlora.api.commands:api", "An OpenAI-compatible HTTP server for the model, its adapters and memory mode."),
    "import": ("memlora.store.commands:import_command", "Copy a memory graph into a store."),
    "export": ("memlora.store.commands:export_command", "Copy a store's graph out to a file or another store."),
    "datagen": ("memlora.data.commands:datagen", "Generate multi-session episodes and training rows."),
    "corpus": ("memlora.data.commands:corpus", "Check the hand-written episode corpus."),
    "train": ("memlora.training.commands:train", "Train LoRA adapters for the memory tools."),
    "export-adapter": ("memlora.models.commands:export_adapter",
                       "Write an adapter for llama.cpp / Ollama (LoRA GGUF) or merged into its base model."),
    "eval": ("memlora.evaluation.commands:eval_command", "Score a model and adapter on episode files."),
    "compare": ("memlora.evaluation.commands:compare", "Put several evaluation runs side by side."),
    "records": ("memlora.records.commands:records", "Memory records: write, recall, purge, stats, export, import, scenes."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_line) for name, (_, help_line) in COMMANDS.items()])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target = COMMANDS[cmd_name][0]
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="memlora")
def main() -> None:
    """Persistent knowledge-graph memory for small local language models."""
    show_machine_choices()


def show_machine_choices() -> None:
    """What memlora picked for this machine (dtype, threads) goes to stderr; --quiet hides it."""
    from memlora.settings import MACHINE_LOG

    log = logging.getLogger(MACHINE_LOG)
    if not any(isinstance(handler, StderrHandler) for handler in log.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("memlora: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO)


class StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when a line comes (a test runner or click may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


if __name__ == "__main__":
    main()
