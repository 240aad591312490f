"""The built-in prompt sets (JSON files beside this module) and resolving what a request asks."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from services.inference.evaluations.schemas import PromptSet, PromptSetSummary, SetKind
from shared.errors import UnprocessableEntity

_FOLDER = Path(__file__).with_name("prompt_sets")


class UnknownPromptSet(UnprocessableEntity):
    code = "unknown_prompt_set"


class PromptSetTooLarge(UnprocessableEntity):
    code = "prompt_sets_too_large"


@functools.cache
def builtin_sets() -> tuple[PromptSet, ...]:
    """Every shipped set, every version, by name then version."""
    sets = [
        PromptSet.model_validate(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(_FOLDER.glob("*.json"))
    ]
    return tuple(sorted(sets, key=lambda s: (s.name, s.version)))


def summary(prompt_set: PromptSet) -> PromptSetSummary:
    return PromptSetSummary(
        name=prompt_set.name,
        version=prompt_set.version,
        kind=prompt_set.kind,
        probe=prompt_set.probe,
        description=prompt_set.description,
        size=len(prompt_set.prompts) + len(prompt_set.pairs),
    )


def _builtin(spec: str) -> PromptSet:
    name, _, version = spec.partition("@")
    matching = [s for s in builtin_sets() if s.name == name]
    if version:
        matching = [s for s in matching if version.isdigit() and s.version == int(version)]
    if not matching:
        known = ", ".join(sorted({f"{s.name}@{s.version}" for s in builtin_sets()}))
        raise UnknownPromptSet(f"No built-in prompt set {spec!r}; the built-in sets: {known}.")
    return matching[-1]


def resolve(
    names: list[str] | None, custom: list[PromptSet], *, repeats: int, max_prompts: int
) -> list[PromptSet]:
    """The sets an evaluation runs: the named built-in ones (all when `names` is None) and the
    caller's own; 422 for an unknown name, a duplicate, or more prompts than allowed."""
    chosen = [_builtin(n) for n in (names if names is not None else _latest_names())]
    chosen.extend(custom)
    if not chosen:
        raise UnknownPromptSet("Choose at least one prompt set (built-in or custom_sets).")
    keys = [(s.name, s.version) for s in chosen]
    if len(keys) != len(set(keys)):
        raise UnknownPromptSet("Each prompt set (name and version) may be named once.")
    total = prompts_in(chosen)
    if total > max_prompts:
        raise PromptSetTooLarge(
            f"These sets hold {total} prompts (a pair counts as two); at most {max_prompts} "
            "may run in one evaluation. Choose fewer sets or smaller ones."
        )
    return chosen


def prompts_in(sets: list[PromptSet]) -> int:
    return sum(s.generations for s in sets)


def generations(sets: list[PromptSet], repeats: int) -> int:
    """Samples an evaluation takes: consistency prompts `repeats` times, the rest once."""
    return sum(s.generations * (repeats if s.kind is SetKind.CONSISTENCY else 1) for s in sets)


def _latest_names() -> list[str]:
    return sorted({s.name for s in builtin_sets()})
