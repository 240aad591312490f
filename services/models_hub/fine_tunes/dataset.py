"""Fine-tuning datasets: JSONL parsing, shape checks and tokenization with loss masks.

Each line is one example, either `{"messages": [{"role": ..., "content": ...}, ...]}` (chat:
rendered with the model's chat template, loss on the assistant turns only) or
`{"text": "..."}` (plain text: loss on every token). Problems are collected per line so one
answer names every bad line (up to a cap), not only the first.

The API checks an upload with this module before a job exists; the training process (which
imports nothing of the web stack) tokenizes with the same functions, so what was checked is
what trains. The tokenizer is duck-typed (a transformers tokenizer: `__call__`,
`apply_chat_template`, `eos_token_id`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ROLES = frozenset({"system", "user", "assistant"})
MAX_REPORTED_PROBLEMS = 20
IGNORE_INDEX = -100  # labels torch's cross-entropy skips


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int  # 1-based
    message: str


@dataclass(slots=True)
class ParsedDataset:
    examples: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line of each example
    problems: list[LineProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where no loss is taken

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _shape_problem(example: Any) -> str | None:
    """Why a decoded line is not a usable example, or None."""
    if not isinstance(example, dict):
        return 'each line must be a JSON object: {"messages": [...]} or {"text": "..."}'
    keys = set(example)
    if keys == {"text"}:
        text = example["text"]
        if not isinstance(text, str):
            return '"text" must be a string'
        if not text.strip():
            return '"text" is empty'
        return None
    if keys != {"messages"}:
        return 'each line must have exactly one key, "messages" (chat) or "text"; found ' + (
            ", ".join(sorted(f'"{k}"' for k in keys)) or "none"
        )
    messages = example["messages"]
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list'
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            return f'message {index + 1} must be an object with "role" and "content" only'
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return f"message {index + 1} has role {role!r}; use system, user or assistant"
        if role == "system" and index != 0:
            return f"message {index + 1}: a system message may only come first"
        if not isinstance(content, str) or not content.strip():
            return f"message {index + 1} has empty or non-string content"
    if not any(m["role"] == "assistant" for m in messages):
        return "the conversation has no assistant message to learn from"
    return None


def parse_jsonl(raw: bytes, *, max_examples: int) -> ParsedDataset:
    """Decode and shape-check every line (blank lines are skipped)."""
    parsed = ParsedDataset()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        parsed.problems.append(LineProblem(line, "is not valid UTF-8"))
        return parsed
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        try:
            example = json.loads(row)
        except json.JSONDecodeError as exc:
            parsed.problems.append(LineProblem(number, f"is not valid JSON ({exc.msg})"))
            continue
        problem = _shape_problem(example)
        if problem is not None:
            parsed.problems.append(LineProblem(number, problem))
            continue
        parsed.examples.append(example)
        parsed.lines.append(number)
        if len(parsed.examples) > max_examples:
            parsed.problems.append(
                LineProblem(number, f"the file has more than {max_examples} examples")
            )
            break
    if not parsed.examples and not parsed.problems:
        parsed.problems.append(LineProblem(1, "the file has no examples"))
    return parsed


def _ids(encoded: Any) -> list[int]:
    # apply_chat_template(tokenize=True) returns a list, or a BatchEncoding in transformers 5.
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(rendered)


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The chat template writes its own special tokens (bos) as text.
    return _ids(tokenizer(text, add_special_tokens=False))


def tokenize_example(tokenizer: Any, example: dict[str, Any]) -> TokenizedExample:
    """Token ids and labels of one checked example.

    Chat: the whole conversation is rendered once; each assistant turn's tokens are the span
    between the rendering of the turns before it (with the generation prompt) and the
    rendering that includes it, so the loss covers what the model says, its end-of-turn marker
    included, and never the prompt."""
    if "text" in example:
        ids = _ids(tokenizer(example["text"], add_special_tokens=True))
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(int(eos))
        return TokenizedExample(ids, list(ids))
    messages: list[dict[str, str]] = example["messages"]
    ids = _encode(tokenizer, _render(tokenizer, messages, generation_prompt=False))
    labels = [IGNORE_INDEX] * len(ids)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(
            _encode(tokenizer, _render(tokenizer, messages[:index], generation_prompt=True))
        )
        end = len(
            _encode(tokenizer, _render(tokenizer, messages[: index + 1], generation_prompt=False))
        )
        for position in range(start, min(end, len(ids))):
            labels[position] = ids[position]
    return TokenizedExample(ids, labels)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def check_tokens(
    tokenizer: Any, parsed: ParsedDataset, *, max_seq_length: int
) -> tuple[list[LineProblem], int]:
    """Problems of examples longer than `max_seq_length` tokens (or with nothing to learn),
    and the number of tokens the dataset trains on."""
    problems: list[LineProblem] = []
    trained = 0
    chat_ok = has_chat_template(tokenizer)
    for example, line in zip(parsed.examples, parsed.lines, strict=True):
        if "messages" in example and not chat_ok:
            problems.append(
                LineProblem(
                    line,
                    "is a chat example, but the model has no chat template; use "
                    '{"text": "..."} lines',
                )
            )
            continue
        tokenized = tokenize_example(tokenizer, example)
        if len(tokenized.input_ids) > max_seq_length:
            problems.append(
                LineProblem(
                    line,
                    f"has {len(tokenized.input_ids)} tokens, more than max_seq_length "
                    f"({max_seq_length})",
                )
            )
        elif tokenized.trained_tokens == 0:
            problems.append(LineProblem(line, "has no tokens to learn from"))
        trained += tokenized.trained_tokens
    return problems, trained
