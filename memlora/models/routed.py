"""The weights behind each adapter role: one base with every adapter (dynamic), or one merged
copy of the base per adapter (merged). Which role serves which task is memlora.routing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from memlora.routing import RoutingError, Serving, check_serving


def merge_into_base(loaded: Any) -> Any:
    """A LoadedModel whose one adapter is merged into the weights (a plain model, no PEFT layers)."""
    from memlora.models.loading import LoadedModel

    if len(loaded.adapters) != 1:
        raise RoutingError(f"merging needs exactly one adapter loaded, not {len(loaded.adapters)}")
    merged = loaded.model.merge_and_unload()
    merged.eval()
    return LoadedModel(merged, loaded.tokenizer, loaded.name, loaded.family, loaded.device)


def speed_up(loaded: Any) -> Any:
    """memlora's CPU decode speedups for a merged copy (after the merge: the packed layers must
    hold the merged weights); nothing on a GPU."""
    if loaded.device.type == "cpu":
        from memlora.models.cpu_inference import prepare_for_cpu_inference

        prepare_for_cpu_inference(loaded.model)
    return loaded


@dataclass
class RoutedModel:
    """The weights behind each adapter role, loaded on first use.

    `target(role)` gives the LoadedModel to run and the adapter name to activate in it: in
    dynamic serving one LoadedModel holds every adapter (the name picks one per batch); in merged
    serving each role has a LoadedModel of its own with the adapter merged in (name None), and
    the base model is one more copy. A role without an adapter runs on the base model.
    """

    model: str
    adapters: dict[str, str]  # role -> adapter folder
    serving: Serving = "dynamic"
    loader: Callable[..., Any] | None = None  # load_model or a stand-in (tests); called as loader(model, adapters=...)
    preloaded: Any = None  # a LoadedModel to use as the dynamic one (tests, or a caller that loaded it)
    options: dict[str, Any] = field(default_factory=dict)  # more load_model arguments: device, dtype
    _models: dict[str | None, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_serving(self.serving)
        from memlora.models.loading import adapter_name

        names: dict[str, str] = {}
        for path in self.adapters.values():
            if names.setdefault(adapter_name(path), str(path)) != str(path):
                raise RoutingError(f"adapters {names[adapter_name(path)]} and {path} would load under one name "
                                   f"({adapter_name(path)!r}): give them folders of different names")
        if self.preloaded is not None:
            self._models[None if self.serving == "merged" else "dynamic"] = self.preloaded

    def _load(self, *args: Any, **kwargs: Any) -> Any:
        kwargs = {**self.options, **kwargs}
        if self.loader is not None:
            return self.loader(*args, **kwargs)
        from memlora.models.loading import load_model

        return load_model(*args, **kwargs)

    def adapter_name(self, role: str | None) -> str | None:
        """The name the adapter of `role` is loaded under (None: the base model serves `role`)."""
        from memlora.models.loading import adapter_name

        path = self.adapters.get(role) if role is not None else None
        return adapter_name(path) if path else None

    def target(self, role: str | None) -> tuple[Any, str | None]:
        """(LoadedModel, adapter name or None) that serves `role`."""
        name = self.adapter_name(role)
        if self.serving == "dynamic":
            if "dynamic" not in self._models:
                paths = sorted(set(self.adapters.values()))
                self._models["dynamic"] = self._load(self.model, adapters=paths or None)
            return self._models["dynamic"], name
        key = role if name is not None else None
        if key not in self._models:
            if key is None:
                self._models[None] = self._load(self.model, adapters=None)
            else:
                # cpu_speedups after the merge: the packed layers must hold the merged weights
                loaded = self._load(self.model, adapters=[self.adapters[key]], cpu_speedups=False)
                self._models[key] = speed_up(merge_into_base(loaded))
        return self._models[key], None

    @property
    def loaded_models(self) -> list[Any]:
        """The LoadedModels loaded so far (one in dynamic serving, one per role used in merged)."""
        return list(self._models.values())

    @property
    def tokenizer(self) -> Any:
        """Every target shares the base model's tokenizer; loads the first target if none is yet."""
        if not self._models:
            self.target(None)
        return next(iter(self._models.values())).tokenizer
