"""`memlora train ...`: adapter training commands.

Their options are generated from the settings dataclasses (`SftSettings`, `GrpoSettings`,
memlora.settings): the defaults, types and help texts live there, once.
"""

from __future__ import annotations

import click

from memlora.settings import settings_options
from memlora.training.grpo import GrpoSettings
from memlora.training.sft import SettingsError, SftSettings, train_sft


@click.group()
def train() -> None:
    """Train LoRA adapters that teach a model to use the memory tools."""


@train.command("sft")
@settings_options(SftSettings)
def sft(settings: SftSettings) -> None:
    """Supervised LoRA fine-tuning on generated memory conversations."""
    try:
        path = train_sft(settings)
    except (SettingsError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"adapter written to {path}")


@train.command("grpo")
@settings_options(GrpoSettings)
def grpo(settings: GrpoSettings) -> None:
    """Reinforcement learning (GRPO) of an adapter on turns played on a real memory store."""
    from memlora.training.grpo import train_grpo
    from memlora.training.sampling import ReportError

    try:
        path = train_grpo(settings)
    except (SettingsError, ReportError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"adapter written to {path}")
