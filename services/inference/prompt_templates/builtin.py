"""The built-in prompt templates everyone may read and use (they live in code, not the table).

Drawn from the course material on prompting: few-shot (worked examples, then the query),
chain-of-thought (a step-by-step scaffold), role prompting (role, context, task), and plain.
Their ids are fixed (uuid5 of their names), so clients and conversations can keep them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f1d2c3b-8a4e-4b7f-9c0d-1e2f3a4b5c6d")


@dataclass(frozen=True, slots=True)
class BuiltinTemplate:
    id: uuid.UUID
    name: str
    description: str
    body: str
    variables: list[str]


def _builtin(name: str, description: str, body: str, variables: list[str]) -> BuiltinTemplate:
    return BuiltinTemplate(uuid.uuid5(_NAMESPACE, name), name, description, body, variables)


BUILTIN_TEMPLATES: tuple[BuiltinTemplate, ...] = (
    _builtin(
        "plain",
        "Your text as it is.",
        "{{ text }}",
        ["text"],
    ),
    _builtin(
        "few-shot",
        "Worked examples of the task, then the query to answer the same way.",
        "Here are some examples of the task, each an input followed by its answer:\n\n"
        "{{ examples }}\n\n"
        "Answer the next input in the same way and format.\n\n"
        "Input: {{ query }}\n"
        "Answer:",
        ["examples", "query"],
    ),
    _builtin(
        "chain-of-thought",
        "A step-by-step scaffold: reason through the problem before answering.",
        "{{ question }}\n\n"
        "Let's think step by step. Work through the problem one step at a time, saying briefly "
        "what each step does and why. Then give the final answer on its own line, starting "
        'with "Answer:".',
        ["question"],
    ),
    _builtin(
        "role-based",
        "Role prompting: who the model should be, what it should know, what it should do.",
        "You are {{ role }}.\n\nContext:\n{{ context }}\n\nTask:\n{{ task }}",
        ["role", "context", "task"],
    ),
)
BUILTIN_BY_ID = {template.id: template for template in BUILTIN_TEMPLATES}
