"""Rewrites that reduce detected bias: rule-based substitutions, and a model's rewrite.

The rules replace gendered words with neutral ones ("he is" -> "they are", "chairman" ->
"chairperson") and a few loaded terms with plainer ones, keeping the capitalisation of the
word replaced; each change is reported with its span in the original prompt.
"""

from __future__ import annotations

import re

from services.inference.prompt_lab.schemas import Change, Rewrite

# Longer phrases first: "he is" must win over "he".
_RULES: tuple[tuple[str, str], ...] = (
    ("he is", "they are"),
    ("she is", "they are"),
    ("he was", "they were"),
    ("she was", "they were"),
    ("he has", "they have"),
    ("she has", "they have"),
    ("he does", "they do"),
    ("she does", "they do"),
    ("himself", "themselves"),
    ("herself", "themselves"),
    ("he", "they"),
    ("she", "they"),
    ("him", "them"),
    ("his", "their"),
    ("hers", "theirs"),
    ("her", "their"),
    ("chairman", "chairperson"),
    ("chairwoman", "chairperson"),
    ("businessman", "businessperson"),
    ("businesswoman", "businessperson"),
    ("policeman", "police officer"),
    ("policewoman", "police officer"),
    ("fireman", "firefighter"),
    ("salesman", "salesperson"),
    ("spokesman", "spokesperson"),
    ("stewardess", "flight attendant"),
    ("waitress", "server"),
    ("actress", "actor"),
    ("mankind", "humankind"),
    ("manpower", "workforce"),
    ("man-made", "artificial"),
    ("guys", "everyone"),
    ("man", "person"),
    ("woman", "person"),
    ("men", "people"),
    ("women", "people"),
    ("boy", "child"),
    ("girl", "child"),
    ("elderly", "older"),
    ("old people", "older people"),
    ("exotic", "unfamiliar"),
    ("illegal immigrant", "undocumented immigrant"),
)
_PATTERN = re.compile(
    r"(?<![A-Za-z'-])(" + "|".join(re.escape(a) for a, _ in _RULES) + r")(?![A-Za-z'-])",
    re.IGNORECASE,
)
_REPLACEMENTS = {a: b for a, b in _RULES}


def _cased(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def rule_based(prompt: str) -> Rewrite | None:
    """The prompt with every rule applied, or None when no rule matched."""
    changes: list[Change] = []
    parts: list[str] = []
    last = 0
    for match in _PATTERN.finditer(prompt):
        original = match.group()
        replacement = _cased(original, _REPLACEMENTS[original.lower()])
        changes.append(
            Change(start=match.start(), end=match.end(), original=original, replacement=replacement)
        )
        parts.append(prompt[last : match.start()])
        parts.append(replacement)
        last = match.end()
    if not changes:
        return None
    parts.append(prompt[last:])
    return Rewrite(method="rule", text="".join(parts), changes=changes)


def rewrite_instruction(prompt: str) -> str:
    return (
        "Rewrite the following prompt so that it is neutral about gender, culture and age "
        "while keeping its meaning. Reply with the rewritten prompt only.\n\n"
        f"Prompt: {prompt}"
    )


def model_rewrite(model: str, output: str) -> Rewrite:
    text = output.strip().strip('"').strip()
    for prefix in ("Rewritten prompt:", "Prompt:"):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :].strip()
    return Rewrite(method="model", text=text, model=model)
