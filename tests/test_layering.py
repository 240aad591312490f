"""The import layers: llmnet/ (the platform command) above services/, services/ above shared/.

* shared/ imports nothing from services/ or llmnet/;
* a service imports only itself and shared/ (other services are reached over HTTP, through
  the clients in shared/), never llmnet/;
* services/inference/engine/ imports no web or storage framework (FastAPI, Starlette,
  SQLAlchemy, Redis): the HTTP layer talks to it, not the other way round.

Imports are read with `ast` from every .py file, wherever they sit (module level, inside a
function, under TYPE_CHECKING), relative ones resolved, and `importlib.import_module("...")`
with a literal name counts too. The engine rule covers its own import statements; what shared/
modules it uses import in turn is shared/'s business.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(
    path.name for path in (ROOT / "services").iterdir() if (path / "__init__.py").is_file()
)
ENGINE = ("services", "inference", "engine")
ENGINE_FORBIDDEN = {"fastapi", "starlette", "sqlalchemy", "redis"}


@dataclass(frozen=True)
class Import:
    module: str  # the dotted name brought in, e.g. "services.accounts.models"
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: Path, level: int, module: str | None) -> str:
    """The absolute name of `from <dots><module> import ...` written in `path`."""
    if level == 0:
        return module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def imports_of(path: Path) -> Iterator[Import]:
    """Every module `path` imports, at any depth of its syntax tree."""
    return imports_in(path.read_text(encoding="utf-8"), path)


def imports_in(source: str, path: Path) -> Iterator[Import]:
    """Every module `source` imports, its relative imports resolved as if it were `path`."""
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node.level, node.module)
            for alias in node.names:
                # `from services import accounts` imports services.accounts; for a plain
                # name (a class, a function) the longer name is simply not a module.
                name = base if alias.name == "*" else f"{base}.{alias.name}"
                yield Import(name, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(node.args[0].value, node.lineno)


def python_files(*top: str) -> list[Path]:
    return sorted(
        path
        for folder in top
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


# (importing file, dotted name split in parts) -> why that import is refused, or None.
Rule = Callable[[Path, tuple[str, ...]], str | None]


def violations(files: list[Path], forbidden: Rule) -> list[str]:
    found = []
    for path in files:
        for imported in imports_of(path):
            reason = forbidden(path, tuple(imported.module.split(".")))
            if reason:
                where = f"{path.relative_to(ROOT)}:{imported.line}"
                found.append(f"{where} imports {imported.module}: {reason}")
    return found


# --------------------------------------------------------------------------- the rules


def _shared_rule(path: Path, parts: tuple[str, ...]) -> str | None:
    if parts[0] in {"services", "llmnet"}:
        return "shared/ depends on nothing above it"
    return None


def _service_rule(path: Path, parts: tuple[str, ...]) -> str | None:
    own = path.relative_to(ROOT).parts[1]
    if parts[0] == "llmnet":
        return "a service never imports the platform layer"
    if parts[0] == "services" and len(parts) > 1 and parts[1] != own:
        return f"services/{own} may import only itself and shared/ (use a shared/ client)"
    return None


def _engine_rule(path: Path, parts: tuple[str, ...]) -> str | None:
    if parts[0] in ENGINE_FORBIDDEN:
        return "the engine knows nothing of HTTP, databases or Redis"
    return None


def test_shared_imports_no_service_and_not_the_platform_layer() -> None:
    files = python_files("shared")
    assert files
    assert violations(files, _shared_rule) == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_itself_and_shared(service: str) -> None:
    files = python_files(f"services/{service}")
    assert files
    assert violations(files, _service_rule) == []


def test_the_inference_engine_imports_no_web_or_storage_framework() -> None:
    files = python_files("/".join(ENGINE))
    assert files
    assert violations(files, _engine_rule) == []


# --------------------------------------------------------------------------- the reader


def test_the_reader_finds_every_kind_of_import() -> None:
    """The rules above are only as good as the reader: it sees imports wherever they are."""
    source = (
        "from __future__ import annotations\n"
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy import select\n"
        "def handler():\n"
        "    from services.accounts.models import User\n"
        "    import redis.asyncio\n"
        "    return importlib.import_module('fastapi')\n"
        "class Lazy:\n"
        "    def load(self):\n"
        "        from .. import openai\n"
        "        from .scheduler import Scheduler\n"
        "        from services import models_hub\n"
    )
    # Read as if it sat inside the engine package, so that relative imports resolve there.
    placed = ROOT.joinpath(*ENGINE, "sample.py")
    found = {imported.module for imported in imports_in(source, placed)}
    assert {
        "sqlalchemy.select",
        "services.accounts.models.User",
        "redis.asyncio",
        "fastapi",
        "services.inference.openai",
        "services.inference.engine.scheduler.Scheduler",
        "services.models_hub",
    } <= found
    parts = {tuple(name.split(".")) for name in found}
    assert {p[0] for p in parts if _engine_rule(placed, p)} == {"sqlalchemy", "redis", "fastapi"}
    assert {p[:2] for p in parts if _service_rule(placed, p)} == {
        ("services", "accounts"),
        ("services", "models_hub"),
    }
