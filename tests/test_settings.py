"""Settings dataclasses as command-line options (memlora.settings): defaults from the dataclass only,
--config files, and the options every model command shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from memlora.cli import COMMANDS, main
from memlora.settings import (
    ADAPTER, COMMON_OPTIONS, DEFAULT_MODEL, DEVICE, DTYPE, DTYPE_CHOICES, MODEL, QUIET, CommonOption,
    SettingsFileError, load_settings, setting_entries, settings_to_dict,
)
from memlora.training import commands as train_commands
from memlora.training.grpo import GrpoSettings
from memlora.training.sft import LoraSettings, SftSettings, write_card

# the options scripts/long_run.py stored for the run in progress, replayed by every sitting
LONG_RUN = ["--model", "qwen2.5-coder-0.5b", "--lora-r", "16", "--lora-alpha", "32", "--lr", "2e-4", "--grad-accum",
            "8", "--batch-size", "1", "--max-length", "4096", "--eval-every", "20", "--save-every", "20",
            "--max-eval-rows", "40", "--patience", "0", "--seed", "17", "--max-steps", "523", "--resume",
            "--max-minutes", "145.0", "--data", "D", "--out", "O"]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The settings `memlora train sft` and `memlora train grpo` would train with; nothing is trained."""
    import memlora.training.grpo as grpo

    seen: list[Any] = []

    def record(settings: Any) -> Path:
        seen.append(settings)
        return Path(settings.out)

    monkeypatch.setattr(train_commands, "train_sft", record)
    monkeypatch.setattr(grpo, "train_grpo", record)
    return seen


def run(args: list[str], code: int = 0) -> click.testing.Result:
    result = CliRunner().invoke(train_commands.train, args)
    assert result.exit_code == code, result.output
    return result


def test_generated_options_carry_the_dataclass_defaults(captured: list[Any], tmp_path: Path) -> None:
    for name, cls in (("sft", SftSettings), ("grpo", GrpoSettings)):
        options = {param.name: param for param in train_commands.train.commands[name].params}
        for entry in setting_entries(cls):
            option = options[entry.name]
            assert entry.flag.split("/")[0] in option.opts, entry.key
            if entry.default is dataclasses_missing():
                assert option.default is None and "Required" in (option.help or ""), entry.key
            elif isinstance(entry.default, tuple):
                assert option.default == ",".join(entry.default), entry.key
            else:
                assert option.default == entry.default, entry.key
    run(["sft", "--data", "d", "--out", "o"])
    run(["grpo", "--init", "i", "--data", "d", "--out", "o"])
    assert captured == [SftSettings(data=Path("d"), out=Path("o")),
                        GrpoSettings(init=Path("i"), data=Path("d"), out=Path("o"))]
    assert captured[0].lora == LoraSettings() and captured[0].model == DEFAULT_MODEL


def dataclasses_missing() -> Any:
    from dataclasses import MISSING

    return MISSING


def test_the_long_runs_stored_flags_parse_to_the_same_settings(captured: list[Any]) -> None:
    run(["sft", *LONG_RUN])
    assert captured[-1] == SftSettings(
        data=Path("D"), out=Path("O"), model="qwen2.5-coder-0.5b", lora=LoraSettings(r=16, alpha=32),
        learning_rate=2e-4, grad_accum=8, batch_size=1, max_length=4096, eval_every=20, save_every=20,
        max_eval_rows=40, early_stopping_patience=0, seed=17, max_steps=523, resume=True, max_minutes=145.0)


def test_every_old_flag_spelling_still_sets_its_setting(captured: list[Any], tmp_path: Path) -> None:
    init = tmp_path / "init"
    init.mkdir()
    run(["sft", "--data", "d", "--out", "o", "--lora-dropout", "0.1", "--target-modules", "q_proj, v_proj",
         "--mlp", "--no-format-token-rows", "--epochs", "2", "--max-train-rows", "10", "--init-adapter", str(init),
         "--prefix-cache", "base", "--threads", "2", "--device", "cpu", "--dtype", "fp32", "--no-progress"])
    settings = captured[-1]
    assert settings.lora == LoraSettings(dropout=0.1, target_modules=("q_proj", "v_proj"), include_mlp=True,
                                         train_format_tokens=False)
    assert (settings.epochs, settings.max_train_rows, settings.init_adapter, settings.prefix_cache) == \
        (2.0, 10, init, "base")
    assert (settings.threads, settings.device, settings.dtype, settings.quiet) == (2, "cpu", "fp32", True)
    run(["grpo", "--init", "i", "--data", "d", "--out", "o", "--weights-from", "w", "--turns-per-step", "3",
         "--group-size", "5", "--lr", "1e-5", "--no-turn-prompt-cache", "--prefix-cache", "off", "--resume"])
    grpo = captured[-1]
    assert (grpo.weights_from, grpo.turns_per_step, grpo.group_size, grpo.learning_rate) == (Path("w"), 3, 5, 1e-5)
    assert (grpo.turn_prompt_cache, grpo.prefix_cache, grpo.resume) == (False, "off", True)
    refused = run(["sft", "--data", "d", "--out", "o", "--prefix-cache", "sometimes"], code=2)
    assert "'sometimes' is not one of 'adapted', 'base', 'off'" in refused.output


def card_of(settings: SftSettings, folder: Path) -> Path:
    """card.json as a training run writes it."""
    rows = folder / "train.rows.jsonl"
    rows.write_text("{}\n")
    write_card(folder, settings=settings, train_path=rows, n_train=1, n_eval=0, seconds=1.0, tokens=10,
               prefix_tokens=0, global_step=1, best_eval_loss=None, dtype="torch.float32")
    return folder / "card.json"


def test_a_card_records_every_setting_and_config_loads_them_back(captured: list[Any], tmp_path: Path) -> None:
    init = tmp_path / "init"
    init.mkdir()
    settings = SftSettings(data=tmp_path, out=tmp_path / "adapter", model="gemma-3-270m",
                           lora=LoraSettings(r=8, target_modules=("q_proj",), include_mlp=True),
                           learning_rate=1e-3, max_train_rows=12, max_minutes=2.5, init_adapter=init,
                           prefix_cache="off", dtype="bf16", resume=True, threads=3)
    card = card_of(settings, tmp_path)
    assert json.loads(card.read_text())["settings"] == settings_to_dict(settings)
    assert load_settings(SftSettings, card) == settings
    run(["sft", "--config", str(card)])
    assert captured[-1] == settings
    grpo = GrpoSettings(init=init, data=tmp_path, out=tmp_path / "g", weights_from=tmp_path / "eval",
                        temperature=0.7, turn_prompt_cache=False, quiet=True)
    saved = tmp_path / "grpo.json"
    saved.write_text(json.dumps(settings_to_dict(grpo)))
    assert load_settings(GrpoSettings, saved) == grpo
    run(["grpo", "--config", str(saved)])
    assert captured[-1] == grpo


def test_flags_given_override_the_config_even_at_their_default(captured: list[Any], tmp_path: Path) -> None:
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"data": "d", "out": "o", "lora": {"r": 8, "alpha": 16}, "learning_rate": 1e-3,
                                  "seed": 3, "resume": True}))
    run(["sft", "--config", str(config), "--lora-r", "4", "--seed", "0", "--no-resume", "--out", "elsewhere"])
    settings = captured[-1]
    assert (settings.lora.r, settings.lora.alpha, settings.learning_rate) == (4, 16, 1e-3)
    assert (settings.seed, settings.resume, settings.out, settings.data) == (0, False, Path("elsewhere"), Path("d"))
    # left out of both: the dataclass default
    assert settings.grad_accum == SftSettings(data=Path("d"), out=Path("o")).grad_accum


def test_a_toml_config_nests_like_the_dataclass(captured: list[Any], tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('data = "d"\nout = "o"\nmax_steps = 7\n\n[lora]\nr = 4\ntarget_modules = ["q_proj"]\n')
    run(["sft", "--config", str(config)])
    assert (captured[-1].max_steps, captured[-1].lora.r, captured[-1].lora.target_modules) == (7, 4, ("q_proj",))


@pytest.mark.parametrize("document, message", [
    ({"data": "d", "rank": 4}, "unknown setting 'rank'"),
    ({"lora": {"rank": 4}}, "unknown setting 'lora.rank'"),
    ({"lora": 4}, "unknown setting 'lora'"),
    ({"lora": {"r": "four"}}, "setting 'lora.r' must be an integer, not 'four'"),
    ({"resume": "yes"}, "setting 'resume' must be true or false"),
    ({"prefix_cache": "sometimes"}, "setting 'prefix_cache' must be one of 'adapted', 'base', 'off'"),
    ({"data": None}, "setting 'data' must be given"),
    ({"base_model": "qwen2.5-coder-0.5b", "hyperparameters": {}}, "this adapter card records no settings"),
])
def test_a_config_that_is_not_settings_of_the_command_is_refused_by_name(
        captured: list[Any], tmp_path: Path, document: dict[str, Any], message: str) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(document))
    result = run(["sft", "--config", str(config), "--data", "d", "--out", "o"], code=2)
    assert str(config) in result.output and message in result.output
    assert not captured
    with pytest.raises(SettingsFileError, match=message.replace("(", r"\(")):
        load_settings(SftSettings, config)


def test_required_settings_come_from_the_command_line_or_the_config(captured: list[Any], tmp_path: Path) -> None:
    assert "Missing option '--data'" in run(["sft", "--out", "o"], code=2).output
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"out": "o"}))
    assert "Missing option '--data'" in run(["sft", "--config", str(config)], code=2).output
    run(["sft", "--config", str(config), "--data", "d"])
    assert captured[-1] == SftSettings(data=Path("d"), out=Path("o"))
    with pytest.raises(SettingsFileError, match="required settings missing: data"):
        load_settings(SftSettings, config)


# ----------------------------------------------------------------------------- shared options

# commands that run a model: every one takes all five shared options
RUNS_A_MODEL = {"demo", "chat", "replay", "api", "eval", "records write", "records recall"}
# they load one too, but the adapter is another option: training starts from --init-adapter / --init,
# export-adapter takes it as its argument
LOADS_A_MODEL = {"train sft", "train grpo", "export-adapter"}


def leaf_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
        else:
            found[path] = command

    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None
        walk(command, name)
    return found


def test_every_command_takes_the_shared_options_from_one_definition() -> None:
    by_flag = {option.flag: option for option in COMMON_OPTIONS}
    by_flag["--no-progress"] = QUIET
    commands = leaf_commands()
    assert RUNS_A_MODEL | LOADS_A_MODEL <= set(commands)
    for path, command in commands.items():
        shared: set[str] = set()
        for param in command.params:
            for flag in set(param.opts) & set(by_flag):
                assert isinstance(param, CommonOption) and param.shared is by_flag[flag], (path, flag)
                if param.expose_value:
                    spec = by_flag[flag]
                    assert param.default == (() if param.multiple else spec.default), (path, flag)
                    assert type(param.type) is type(click.Option([flag], **spec.attrs).type), (path, flag)
                    assert param.help is not None and param.help.startswith(spec.help), (path, flag)
                shared.add(flag)
        if path in RUNS_A_MODEL:
            assert shared == set(by_flag), path
        if path in LOADS_A_MODEL:
            assert shared == set(by_flag) - {"--adapter"}, path
    assert MODEL.default == DEFAULT_MODEL and ADAPTER.default is DEVICE.default is DTYPE.default is None


def test_the_dtype_choices_are_the_ones_the_loader_knows() -> None:
    from memlora.models.loading import DTYPES

    assert set(DTYPE_CHOICES) == {"auto", *DTYPES}


def test_no_progress_still_means_quiet_and_says_it_is_deprecated(tmp_path: Path) -> None:
    from memlora.data.commands import datagen

    for flag in ("--quiet", "--no-progress", None):
        out = tmp_path / str(flag).strip("-")
        result = CliRunner().invoke(datagen, ["--episodes", "3", "--out", str(out), "--workers", "1",
                                              "--no-handwritten", *([flag] if flag else [])])
        assert result.exit_code == 0, result.output
        assert ("--no-progress is deprecated, use --quiet" in result.output) == (flag == "--no-progress")
        assert ("episodes: 100%" in result.output) == (flag is None)  # the progress bar
    help_text = CliRunner().invoke(datagen, ["--help"]).output
    assert "--quiet" in help_text and "--no-progress" not in help_text


def test_a_model_given_conflicts_with_eval_modes_that_run_none(tmp_path: Path) -> None:
    """--model has a default now; only one typed on the command line contradicts --oracle or --endpoint."""
    from memlora.evaluation.commands import eval_command

    episodes = tmp_path / "e.jsonl"
    episodes.write_text(json.dumps({
        "id": "dog", "user": {"name": None},
        "sessions": [{"id": "s1", "turns": [{"user": "I adopted a beagle called Biscuit."}],
                      "learn": [{"kind": "entity", "name": "Biscuit", "type": ["dog"]}]}],
        "probes": [{"after": "s1", "question": "What is my dog called?", "answers": ["Biscuit"], "kind": "single"}],
    }) + "\n")
    out = str(tmp_path / "o")
    oracle = CliRunner().invoke(eval_command, [str(episodes), "--oracle", "--model", DEFAULT_MODEL, "--out", out])
    assert oracle.exit_code == 2 and "--oracle replays reference calls: it takes no --model" in oracle.output
    remote = CliRunner().invoke(eval_command, [str(episodes), "--endpoint", "http://127.0.0.1:9/v1",
                                               "--endpoint-model", "m", "--dtype", "bf16", "--out", out])
    assert remote.exit_code == 2 and "it takes no --oracle, --model, --adapter, --device or --dtype" in remote.output


def test_records_leave_the_model_to_the_backend_unless_one_is_given(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """The openai backend has its own default chat model: the shared --model default must not reach it."""
    import memlora.records.backends as backends

    asked: list[dict[str, Any]] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        raise backends.RecordsError("stop here")

    monkeypatch.setattr(backends, "open_manager", refuse)
    store = ["--store", f"sqlite:{tmp_path / 'r.db'}"]
    for extra, model in (([], None), (["--model", DEFAULT_MODEL], DEFAULT_MODEL)):
        result = CliRunner().invoke(main, ["records", "recall", "where?", *store, *extra, "--device", "cpu",
                                           "--dtype", "fp32"])
        assert result.exit_code == 1 and "stop here" in result.output
        assert (asked[-1]["model"], asked[-1]["device"], asked[-1]["dtype"]) == (model, "cpu", "fp32")


def test_commands_say_what_they_chose_for_the_machine_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from memlora.cli import show_machine_choices
    from memlora.models.loading import announce_machine, cpu_description
    from memlora.settings import hush_progress_bars

    show_machine_choices()
    line = announce_machine(torch.device("cpu"), torch.float32)
    printed = capsys.readouterr().err
    assert printed == f"memlora: {line}\n"
    assert line.startswith(cpu_description()) and "float32 weights" in line
    assert line.endswith(f", {torch.get_num_threads()} thread" + ("s" if torch.get_num_threads() > 1 else ""))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert announce_machine(torch.device("cpu"), torch.float32).endswith(", 1 thread")
        torch.set_num_threads(2)
        assert announce_machine(torch.device("cpu"), torch.float32).endswith(", 2 threads")
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    hush_progress_bars()  # what --quiet does
    announce_machine(torch.device("cpu"), torch.bfloat16, "training")
    assert capsys.readouterr().err == ""
    show_machine_choices()  # the next command starts loud again
    announce_machine(torch.device("cpu"), torch.bfloat16, "training")
    assert "bfloat16 training" in capsys.readouterr().err
