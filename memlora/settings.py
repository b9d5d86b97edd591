"""Settings dataclasses as command-line options, and the options every model command shares.

A command with many settings (`memlora train sft`, `memlora train grpo`) has one dataclass,
documented field by field (`setting(default, help)`, which is `field(metadata={"help": ...})`
as TRL and transformers document their configs). Its command-line options are generated from
the fields (`settings_options`): a default, a type, a list of choices or a help text is written
once, in the dataclass, and the command receives the dataclass itself. `--config FILE` loads a
saved set (JSON, TOML, or an adapter's card.json, whose "settings" key records the set it was
trained with); options given on the command line override the file.

The options that mean the same thing in every command, `--model`, `--adapter`, `--dtype`,
`--device` and `--quiet`, are defined here once (`MODEL`, `ADAPTER`, `DTYPE`, `DEVICE`, `QUIET`)
and every command, and every settings dataclass (`common_setting`), takes them from here.

Written by hand because no maintained library does this for click while keeping the flags that
saved runs replay (`--lr`, `--patience`, `--target-modules` as a comma list, `--mlp`):
transformers' HfArgumentParser reads dataclass fields the same way but builds an argparse
parser; typed-settings (click) wants attrs classes, reads TOML files from fixed paths or an
environment variable rather than a `--config` option, and names nested options after their
class; pydanclick maps pydantic models and loads no files.

Only click and the standard library are imported here: `memlora --help` and `memlora serve`
must not pay for torch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import click
from click.core import ParameterSource

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
BASE_ADAPTER = "none"  # the adapter name that means "the base model, no LoRA"
Dtype = Literal["auto", "bf16", "fp32"]
DTYPE_CHOICES: tuple[str, ...] = get_args(Dtype)

Function = TypeVar("Function", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------
# the options every command that loads a model shares


class CommonOption(click.Option):
    """A click option made from a `SharedOption`; `shared` says which, so a test can check that
    every command's --model is the one definition."""

    def __init__(self, *args: Any, shared: SharedOption, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared = shared


class SharedOption:
    """One option, with one meaning and one default, for every command that takes it.

    `aliases` are older spellings of a flag: they still work, warn that they are deprecated and
    do not show in --help.
    """

    def __init__(self, flag: str, *, help: str, default: Any = None, aliases: tuple[str, ...] = (),
                 **attrs: Any) -> None:
        self.flag = flag
        self.help = help
        self.default = default
        self.aliases = aliases
        self.attrs = attrs

    @property
    def name(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def __call__(self, function: Function | None = None, *, name: str | None = None, more_help: str = "",
                 multiple: bool = False) -> Any:
        """The click decorator. `more_help` adds what the option does in this command (never
        another meaning); `multiple` makes it repeatable, each value meaning what one does."""

        def decorate(function: Function) -> Function:
            target = name or self.name
            attrs = dict(self.attrs)
            if multiple:
                attrs["multiple"] = True
            elif "show_default" not in attrs:
                attrs["show_default"] = self.default is not None and self.default is not False
            if self.aliases:
                attrs["callback"] = _alias_or_flag(target)
            for alias in self.aliases:
                function = click.option(alias, f"_{target}_alias_{alias.strip('-').replace('-', '_')}",
                                        is_flag=True, hidden=True, expose_value=False, cls=CommonOption,
                                        shared=self, callback=_deprecated_alias(alias, self.flag, target))(function)
            return click.option(self.flag, target, cls=CommonOption, shared=self,
                                default=() if multiple else self.default,
                                help=f"{self.help} {more_help}".strip(), **attrs)(function)

        return decorate(function) if function is not None else decorate


def _deprecated_alias(alias: str, flag: str, target: str) -> Callable[..., None]:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            click.echo(f"warning: {alias} is deprecated, use {flag}", err=True)
            ctx.params[target] = True
            ctx.set_parameter_source(target, ParameterSource.COMMANDLINE)

    return callback


def _alias_or_flag(target: str) -> Callable[..., bool]:
    """The flag is on when it or an alias was given: an alias that click processed first has
    already set it in ctx.params."""

    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        return bool(value or ctx.params.get(target))

    return callback


MODEL = SharedOption(
    "--model", default=DEFAULT_MODEL,
    help="The base model: a bundled one (qwen2.5-coder-0.5b, gemma-3-270m), a local Hugging Face folder or a hub id.")
ADAPTER = SharedOption(
    "--adapter", default=None,
    help=f"A LoRA adapter folder; '{BASE_ADAPTER}' for the bare base model. Default: the adapter memlora ships "
         "for the model, when there is one.")
DTYPE = SharedOption(
    "--dtype", default=None, type=click.Choice(DTYPE_CHOICES),
    help="Weight dtype. Default: $MEMLORA_DTYPE, else auto (bf16 on GPUs and on CPUs with bf16 instructions, "
         "fp32 on other CPUs).")
DEVICE = SharedOption(
    "--device", default=None,
    help="torch device: cpu, cuda, cuda:1 ... Default: the GPU when there is one.")
QUIET = SharedOption(
    "--quiet", default=False, is_flag=True, aliases=("--no-progress",),
    help="No progress bars.")

COMMON_OPTIONS: tuple[SharedOption, ...] = (MODEL, ADAPTER, DTYPE, DEVICE, QUIET)


def model_options(function: Function) -> Function:
    """--model, --adapter, --dtype, --device and --quiet: the options of a command that runs a model."""
    for option in reversed(COMMON_OPTIONS):
        function = option(function)
    return function


MACHINE_LOG = "memlora.machine"  # what memlora chose for the machine; the CLI prints it on stderr


def hush_progress_bars() -> None:
    """--quiet for the libraries that draw their own bars while a model loads (transformers,
    and huggingface_hub through it), and for memlora's line on the machine's choices."""
    import logging as std_logging

    from transformers.utils import logging

    logging.disable_progress_bar()
    std_logging.getLogger(MACHINE_LOG).setLevel(std_logging.WARNING)


def given(name: str) -> bool:
    """Whether the current command's option `name` was given (on the command line or through an
    environment variable), rather than left at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


# ---------------------------------------------------------------------------------------------
# settings dataclasses


def setting(default: Any = MISSING, help: str = "", *, flag: str | None = None, type: Any = None,
            default_factory: Any = MISSING) -> Any:
    """A documented dataclass field; `flag` spells its option when the field's name would not
    (`--lr` for learning_rate), `type` is a click type for it (a `click.Path` that must exist)."""
    metadata: dict[str, Any] = {"help": help}
    if flag:
        metadata["flag"] = flag
    if type is not None:
        metadata["type"] = type
    return field(default=default, default_factory=default_factory, metadata=metadata)


def common_setting(option: SharedOption, more_help: str = "") -> Any:
    """A field that is one of the shared options: its default and help come from it; `more_help`
    says what it is in this command."""
    return field(default=option.default,
                 metadata={"help": f"{option.help} {more_help}".strip(), "shared": option, "more_help": more_help})


def nested_settings(cls: type, help: str, prefix: str) -> Any:
    """A field holding another settings dataclass, whose options are spelled `--<prefix><name>`."""
    return field(default_factory=cls, metadata={"help": help, "prefix": prefix})


@dataclass(frozen=True)
class SettingEntry:
    """One leaf of a settings dataclass: its path from the top (("lora", "r")), its field, the
    annotation without None, and its option's flag."""

    path: tuple[str, ...]
    field: dataclasses.Field[Any]
    kind: Any
    optional: bool
    flag: str

    @property
    def name(self) -> str:  # the click parameter name
        return "__".join(self.path)

    @property
    def key(self) -> str:  # how files and messages name it
        return ".".join(self.path)

    @property
    def default(self) -> Any:
        if self.field.default is not MISSING:
            return self.field.default
        if self.field.default_factory is not MISSING:
            return self.field.default_factory()
        return MISSING

    @property
    def shared(self) -> SharedOption | None:
        return self.field.metadata.get("shared")

    def click_type(self) -> Any:
        if "type" in self.field.metadata:
            return self.field.metadata["type"]
        if get_origin(self.kind) is Literal:
            return click.Choice([str(choice) for choice in get_args(self.kind)])
        if self.kind is Path:
            return click.Path(path_type=Path)
        if get_origin(self.kind) is tuple:
            return click.STRING  # a comma-separated list
        return {int: click.INT, float: click.FLOAT, str: click.STRING, bool: click.BOOL}[self.kind]

    def option(self) -> Callable[[Function], Function]:
        if self.shared is not None:
            return self.shared(name=self.name, more_help=self.field.metadata.get("more_help", ""))
        help_text = self.field.metadata["help"]
        default = self.default
        if self.kind is bool:
            flag = self.flag if "/" in self.flag else f"{self.flag}/--no-{self.flag[2:]}"
            return click.option(flag, self.name, default=default, show_default=True, help=help_text)
        if default is MISSING:
            default, help_text = None, f"{help_text} Required (here or in --config)."
        elif get_origin(self.kind) is tuple:
            default = ",".join(default)
        return click.option(self.flag, self.name, type=self.click_type(), default=default,
                            show_default=default is not None, help=help_text)

    def from_command_line(self, value: Any) -> Any:
        if get_origin(self.kind) is tuple and isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(get_args(annotation))
    return annotation, False


def setting_entries(cls: type, prefix: str = "", path: tuple[str, ...] = ()) -> list[SettingEntry]:
    """Every leaf setting of `cls`, nested dataclasses flattened, in field order."""
    hints = get_type_hints(cls)
    entries: list[SettingEntry] = []
    for item in fields(cls):
        kind, optional = _unwrap(hints[item.name])
        if is_dataclass(kind):
            entries += setting_entries(kind, item.metadata.get("prefix", item.name.replace("_", "-") + "-"),
                                       path + (item.name,))
            continue
        if not item.metadata.get("help"):
            raise TypeError(f"{cls.__name__}.{item.name}: a setting needs its help text")
        shared = item.metadata.get("shared")
        flag = shared.flag if shared else item.metadata.get("flag") or f"--{prefix}{item.name.replace('_', '-')}"
        entries.append(SettingEntry(path + (item.name,), item, kind, optional, flag))
    return entries


Settings = TypeVar("Settings")


def build_settings(cls: type[Settings], values: Mapping[tuple[str, ...], Any]) -> Settings:
    """The dataclass from leaf values keyed by path; leaves not given keep their defaults."""

    def build(klass: type, path: tuple[str, ...]) -> Any:
        hints = get_type_hints(klass)
        arguments: dict[str, Any] = {}
        for item in fields(klass):
            here = path + (item.name,)
            kind, _ = _unwrap(hints[item.name])
            if is_dataclass(kind):
                arguments[item.name] = build(kind, here)
            elif here in values:
                arguments[item.name] = values[here]
        return klass(**arguments)

    return build(cls, ())


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """The settings as plain JSON values (paths as strings, tuples as lists), for a card or a
    --config file."""
    return json.loads(json.dumps(dataclasses.asdict(settings), default=str))


class SettingsFileError(ValueError):
    """A --config file that cannot be read as settings of the command."""


def read_settings_file(cls: type, path: str | Path) -> dict[tuple[str, ...], Any]:
    """The leaf values a settings file gives, keyed by path, checked against `cls`.

    JSON, or TOML for a .toml file. An adapter's card.json holds its settings under "settings";
    any other file is the settings themselves, nested as the dataclass nests them (a lora
    section for LoraSettings). Settings it leaves out keep their defaults.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SettingsFileError(f"{path}: {error}") from error
    if not isinstance(document, dict):
        raise SettingsFileError(f"{path}: expected an object of settings, not {type(document).__name__}")
    if "settings" in document and isinstance(document["settings"], dict):
        document = document["settings"]
    elif "base_model" in document:
        raise SettingsFileError(f"{path}: this adapter card records no settings (cards written before "
                                "they did only have 'hyperparameters')")
    entries = {entry.path: entry for entry in setting_entries(cls)}
    sections = {entry.path[:depth] for entry in entries.values() for depth in range(1, len(entry.path))}
    values: dict[tuple[str, ...], Any] = {}

    def walk(mapping: Mapping[str, Any], where: tuple[str, ...]) -> None:
        for key, value in mapping.items():
            here = where + (str(key),)
            if here in entries:
                values[here] = _file_value(entries[here], value, path)
            elif here in sections and isinstance(value, dict):
                walk(value, here)
            else:
                known = ", ".join(entry.key for entry in entries.values())
                raise SettingsFileError(f"{path}: unknown setting {'.'.join(here)!r} (the settings are: {known})")

    walk(document, ())
    return values


def _file_value(entry: SettingEntry, value: Any, path: Path) -> Any:
    """A value from a settings file, checked as strictly as the command line checks it."""

    def wrong(expected: str) -> SettingsFileError:
        return SettingsFileError(f"{path}: setting {entry.key!r} must be {expected}, not {value!r}")

    kind = entry.kind
    if value is None:
        if entry.optional:
            return None
        raise wrong("given")
    if get_origin(kind) is Literal:
        if value not in get_args(kind):
            raise wrong("one of " + ", ".join(repr(choice) for choice in get_args(kind)))
        return value
    if get_origin(kind) is tuple:
        if isinstance(value, str):
            return entry.from_command_line(value)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise wrong("a list of strings")
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind is Path:
        if not isinstance(value, str):
            raise wrong("a path")
        try:
            return Path(entry.click_type().convert(value, None, None))
        except click.BadParameter as error:
            raise SettingsFileError(f"{path}: setting {entry.key!r}: {error.message}") from error
    raise TypeError(f"no file reading for {entry.key}: {kind}")


def load_settings(cls: type[Settings], path: str | Path) -> Settings:
    """The settings a file holds, the others at their defaults (see `read_settings_file`)."""
    values = read_settings_file(cls, path)
    missing = [entry.key for entry in setting_entries(cls) if entry.default is MISSING and entry.path not in values]
    if missing:
        raise SettingsFileError(f"{path}: required settings missing: {', '.join(missing)}")
    return build_settings(cls, values)


def settings_options(cls: type) -> Callable[[Function], Function]:
    """Decorates a click command with an option per setting of `cls` and `--config FILE`; the
    command is called with the settings (`settings=cls(...)`) instead of the options.

    What wins: an option given on the command line, else the --config file, else the default.
    """
    entries = setting_entries(cls)

    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def command(**kwargs: Any) -> Any:
            ctx = click.get_current_context()
            config = kwargs.pop("config")
            values = {entry.path: entry.default for entry in entries if entry.default is not MISSING}
            if config is not None:
                try:
                    values.update(read_settings_file(cls, config))
                except SettingsFileError as error:
                    raise click.BadParameter(str(error), ctx=ctx, param_hint="'--config'") from error
            for entry in entries:
                value = kwargs.pop(entry.name)
                if given(entry.name):
                    values[entry.path] = entry.from_command_line(value)
            for entry in entries:
                if entry.path not in values:
                    raise click.MissingParameter(ctx=ctx, param=_param(ctx, entry.name))
            return function(settings=build_settings(cls, values), **kwargs)

        for entry in reversed(entries):
            command = entry.option()(command)
        return click.option(
            "--config", "config", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
            help="Settings saved in a file (JSON or TOML, or an adapter's card.json); options given here win.",
        )(command)  # type: ignore[return-value]

    return decorate


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(param for param in ctx.command.params if param.name == name)

