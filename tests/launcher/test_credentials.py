"""`make run` hands every process its own service credential and everyone the callers' hashes."""

from __future__ import annotations

from pathlib import Path

from llmnet.launcher import service_callers_setting, with_own_credentials
from llmnet.launcher.secrets import ensure_dev_secrets
from llmnet.launcher.supervisor import service_specs
from shared.auth.service_credentials import ServiceName, parse_service_callers, service_token_hash


def test_each_process_holds_only_its_own_service_token(tmp_path: Path) -> None:
    secrets = ensure_dev_secrets(tmp_path)
    assert ensure_dev_secrets(tmp_path).service_tokens == secrets.service_tokens  # reused
    assert len(set(secrets.service_tokens.values())) == len(ServiceName)
    assert (tmp_path / "service_tokens.json").stat().st_mode & 0o077 == 0

    env = {"SERVICE_CALLERS": service_callers_setting(secrets.service_tokens)}
    specs = with_own_credentials(service_specs(env), secrets)
    by_name = {spec.name: spec.env["SERVICE_TOKEN"] for spec in specs}
    tokens = secrets.service_tokens
    assert by_name["gateway"] == tokens[ServiceName.GATEWAY]
    assert by_name["inference"] == tokens[ServiceName.INFERENCE]
    assert by_name["models-hub-worker"] == by_name["models_hub"] == tokens[ServiceName.MODELS_HUB]
    assert by_name["accounts-worker"] == by_name["accounts"] == tokens[ServiceName.ACCOUNTS]
    assert by_name["feed-worker"] == by_name["feed"] == tokens[ServiceName.FEED]
    assert by_name["inference-worker"] == by_name["inference"] == tokens[ServiceName.INFERENCE]
    for spec in specs:
        others = set(tokens.values()) - {spec.env["SERVICE_TOKEN"]}
        assert not others & set(spec.env.values()), f"{spec.name} holds another's token"

    callers = parse_service_callers(env["SERVICE_CALLERS"])
    assert callers == {name: service_token_hash(token) for name, token in tokens.items()}
