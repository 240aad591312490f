"""Fixtures of the deployment tests: each overlay rendered offline, the compose file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import render
from tests.deploy.stack import COMPOSE_FILE, OVERLAYS


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def k8s_docs(overlay: str) -> list[dict[str, Any]]:
    """The objects `kustomize build deploy/k8s/overlays/<overlay>` prints."""
    docs = render(OVERLAYS[overlay])
    assert docs, f"{overlay} renders nothing"
    return docs


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data
