"""Checking and rendering prompt templates, safely.

Templates are Jinja2, rendered by `jinja2.sandbox.SandboxedEnvironment` with `StrictUndefined`
(a missing variable is an error, never an empty string). On top of the sandbox, a template is
held to a small language before it is ever stored or rendered:

- `{{ name }}` placeholders, optionally through a few string filters (`trim`, `upper`, `lower`,
  `title`, `capitalize`);
- `{% if name %}...{% elif other %}...{% else %}...{% endif %}` (with `not`, `and`, `or`);
- plain text.

Attribute and item access (`{{ x.__class__ }}`, `{{ x['a'] }}`), calls, loops, macros, `set`,
includes and imports are refused with a 422 that names the construct. Without loops or calls,
rendering costs time linear in the template's size; the rendered text is still capped (a
20 kB template repeating one 50 kB variable would otherwise render to gigabytes). Variables are
strings, so no Python object ever reaches the template.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from shared.errors import FieldError, UnprocessableEntity

VARIABLE_PATTERN = r"^[a-z_][a-z0-9_]{0,63}$"
_VARIABLE = re.compile(VARIABLE_PATTERN)
FILTERS = frozenset({"trim", "upper", "lower", "title", "capitalize"})
_ALLOWED = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Filter,
    nodes.If,
    nodes.Not,
    nodes.And,
    nodes.Or,
)
_DESCRIBED: dict[type[nodes.Node], str] = {
    nodes.Getattr: "attribute access (x.y)",
    nodes.Getitem: "item access (x[y])",
    nodes.Call: "calls",
    nodes.For: "loops",
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.Include: "includes",
    nodes.Import: "imports",
    nodes.FromImport: "imports",
    nodes.Extends: "{% extends %}",
    nodes.Block: "blocks",
    nodes.Const: "literal values",
}

_ENVIRONMENT = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class TemplateRefused(UnprocessableEntity):
    code = "invalid_template"


class VariablesMismatch(UnprocessableEntity):
    code = "template_variables_mismatch"


class RenderRefused(UnprocessableEntity):
    code = "template_render_failed"


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    body_chars: int
    variable_chars: int
    rendered_chars: int
    max_variables: int


def placeholders(body: str) -> list[str]:
    """The variables `body` uses, in order of first use; 422 for anything outside the
    allowed language (see the module docstring) or a syntax error."""
    try:
        tree = _ENVIRONMENT.parse(body)
    except TemplateSyntaxError as exc:
        raise TemplateRefused(
            f"The template is not valid (line {exc.lineno}): {exc.message}",
            fields=[FieldError(field="body", message=str(exc.message))],
        ) from exc
    names: list[str] = []
    for node in _walk(tree):
        if not isinstance(node, _ALLOWED):
            what = _DESCRIBED.get(type(node), type(node).__name__)
            message = (
                f"not allowed in prompt templates: {what}; use {{{{ variable }}}} "
                "placeholders, {% if variable %}...{% endif %} and the filters "
                f"{', '.join(sorted(FILTERS))}"
            )
            raise TemplateRefused(
                f"The template is refused (line {node.lineno}): {message}.",
                fields=[FieldError(field="body", message=message)],
            )
        if isinstance(node, nodes.Filter) and (node.name not in FILTERS or node.args):
            message = f"the filter '{node.name}' is not allowed; use {', '.join(sorted(FILTERS))}"
            raise TemplateRefused(
                f"The template is refused (line {node.lineno}): {message}.",
                fields=[FieldError(field="body", message=message)],
            )
        if isinstance(node, nodes.Name):
            if node.ctx != "load" or not _VARIABLE.match(node.name):
                message = (
                    f"'{node.name}' is not a valid variable name (lowercase letters, digits "
                    "and '_', starting with a letter or '_')"
                )
                raise TemplateRefused(
                    f"The template is refused (line {node.lineno}): {message}.",
                    fields=[FieldError(field="body", message=message)],
                )
            if node.name not in names:
                names.append(node.name)
    return names


def _walk(node: nodes.Node) -> Iterable[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def check_template(body: str, variables: list[str], limits: TemplateLimits) -> None:
    """422 unless `body` is an allowed template whose placeholders are exactly `variables`."""
    if len(body) > limits.body_chars:
        raise TemplateRefused(
            f"The template is longer than {limits.body_chars} characters.",
            fields=[FieldError(field="body", message=f"at most {limits.body_chars} characters")],
        )
    if len(variables) > limits.max_variables:
        raise VariablesMismatch(
            f"A template may declare at most {limits.max_variables} variables.",
            fields=[FieldError(field="variables", message=f"at most {limits.max_variables}")],
        )
    if len(set(variables)) != len(variables):
        twice = sorted({v for v in variables if variables.count(v) > 1})
        raise VariablesMismatch(
            f"Variables declared twice: {', '.join(twice)}.",
            fields=[FieldError(field="variables", message=f"declared twice: {', '.join(twice)}")],
        )
    used = placeholders(body)
    undeclared = [name for name in used if name not in variables]
    unused = [name for name in variables if name not in used]
    problems = []
    fields = []
    if undeclared:
        problems.append(f"used but not declared: {', '.join(undeclared)}")
        fields.append(FieldError(field="variables", message=problems[-1]))
    if unused:
        problems.append(f"declared but not used in the body: {', '.join(unused)}")
        fields.append(FieldError(field="variables", message=problems[-1]))
    if problems:
        raise VariablesMismatch(
            "The declared variables do not match the template's placeholders "
            f"({'; '.join(problems)}).",
            fields=fields,
        )


def render(
    body: str, declared: list[str], variables: Mapping[str, str], limits: TemplateLimits
) -> str:
    """`body` with `variables`; 422 naming missing or unknown variables, or over the limits."""
    missing = [name for name in declared if name not in variables]
    unknown = sorted(name for name in variables if name not in declared)
    fields = [FieldError(field=f"variables.{name}", message="is missing") for name in missing]
    fields += [
        FieldError(field=f"variables.{name}", message="is not a variable of this template")
        for name in unknown
    ]
    if fields:
        parts = []
        if missing:
            parts.append(f"missing: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown: {', '.join(unknown)}")
        expected = ", ".join(declared) or "none"
        raise VariablesMismatch(
            f"Template variables {'; '.join(parts)} (this template takes: {expected}).",
            code="template_variables_invalid",
            fields=fields,
        )
    long = [name for name, value in variables.items() if len(value) > limits.variable_chars]
    if long:
        raise RenderRefused(
            f"Variables longer than {limits.variable_chars} characters: {', '.join(sorted(long))}.",
            fields=[
                FieldError(
                    field=f"variables.{n}", message=f"at most {limits.variable_chars} characters"
                )
                for n in sorted(long)
            ],
        )
    # Checked again here: a template stored under older rules must not render outside them.
    placeholders(body)
    try:
        pieces: list[str] = []
        size = 0
        for piece in _ENVIRONMENT.from_string(body).generate(**variables):
            size += len(piece)
            if size > limits.rendered_chars:
                raise RenderRefused(
                    f"The rendered prompt is longer than {limits.rendered_chars} characters; "
                    "shorten the variables."
                )
            pieces.append(piece)
    except (UndefinedError, SecurityError) as exc:
        raise RenderRefused(f"The template could not be rendered: {exc}") from exc
    return "".join(pieces)
