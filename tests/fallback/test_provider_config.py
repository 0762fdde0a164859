from pathlib import Path

import pytest

from fallback.providers.config import ProviderConfig


def test_keys_come_from_the_environment_or_a_file_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "sk-env")
    env = ProviderConfig(name="o", base_url="http://x", api_key_env="K")
    assert env.auth_headers() == {"authorization": "Bearer sk-env"}
    monkeypatch.setenv("K", "sk-rotated")
    assert env.auth_headers() == {"authorization": "Bearer sk-rotated"}
    secret = tmp_path / "key"
    secret.write_text("sk-file\n")
    anthropic = ProviderConfig(name="a", kind="anthropic", base_url="http://x", api_key_file=str(secret))
    assert anthropic.auth_headers() == {"x-api-key": "sk-file"}
    assert ProviderConfig(name="a", kind="anthropic", base_url="http://x", api_key_file=str(secret), auth_header="bearer").auth_headers() == {"authorization": "Bearer sk-file"}
    assert ProviderConfig(name="n", base_url="http://x").auth_headers() == {}


def test_the_key_never_appears_in_a_config_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "sk-secret-value")
    config = ProviderConfig(name="o", base_url="http://x", api_key_env="K", models={"a": "b"})
    assert "sk-secret-value" not in config.model_dump_json()
    assert config.upstream_model("a") == "b" and config.upstream_model("z") == "z"
