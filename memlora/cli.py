"""The `memlora` command line.

Each subcommand lives beside the code it drives and is imported only when it runs, so
`memlora serve` never pays for importing torch.
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "serve": "memlora.server.commands:serve",
    "import": "memlora.store.commands:import_command",
    "export": "memlora.store.commands:export_command",
    "chat": "memlora.agent.commands:chat",
    "replay": "memlora.agent.commands:replay",
    "datagen": "memlora.data.commands:datagen",
    "eval": "memlora.evaluation.commands:eval_command",
    "compare": "memlora.evaluation.commands:compare",
    "train": "memlora.training.commands:train",
    "demo": "memlora.demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="memlora")
def main() -> None:
    """Persistent knowledge-graph memory for small local language models."""


if __name__ == "__main__":
    main()
