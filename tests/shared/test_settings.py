"""Values two services must agree on are one common setting, read alike by each of them."""

from __future__ import annotations

import pytest

from services.gateway.config import GatewaySettings
from services.inference.config import InferenceSettings
from services.models_hub.config import ModelsHubSettings
from shared.settings import UPLOAD_FRAMING_BYTES

REQUIRED = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/llmnet",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "INTERNAL_TOKEN": "settings-test-internal-token",
    "SERVICE_TOKEN": "settings-test-service-token",
    "MODELS_HUB_SECRET_KEYS": "bRRHUxf1Lzp_mNhC3gDXwjlEl_V6Ixgd-Q9Wfr9ToW8=",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    for name in ("MAX_UPLOAD_BYTES", "OUTBOUND_ALLOW", "PROVIDER_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_environment_sets_the_upload_cap_allow_list_and_timeout_everywhere(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("MAX_UPLOAD_BYTES", str(64 * 1024**2))
    environment.setenv("OUTBOUND_ALLOW", " 10.0.0.5, models.internal:8443 ,,192.168.0.0/16")
    environment.setenv("PROVIDER_TIMEOUT_SECONDS", "7.5")
    gateway, hub, inference = GatewaySettings(), ModelsHubSettings(), InferenceSettings()

    assert hub.max_upload_bytes == 64 * 1024**2
    # The gateway lets an upload's body through with room for its multipart framing.
    assert gateway.max_upload_body_bytes == 64 * 1024**2 + UPLOAD_FRAMING_BYTES
    allowed = ["10.0.0.5", "models.internal:8443", "192.168.0.0/16"]
    assert hub.outbound_allow == inference.outbound_allow == allowed
    assert hub.provider_timeout_seconds == inference.provider_timeout_seconds == 7.5


def test_the_defaults_agree(environment: pytest.MonkeyPatch) -> None:
    gateway, hub, inference = GatewaySettings(), ModelsHubSettings(), InferenceSettings()
    assert hub.max_upload_bytes == 2 * 1024**3
    assert gateway.max_upload_body_bytes == 2 * 1024**3 + 16 * 1024**2
    assert hub.outbound_allow == inference.outbound_allow == []
    assert hub.provider_timeout_seconds == inference.provider_timeout_seconds == 120
