from pathlib import Path

import pytest

from contracts.errors import ConfigError
from spillover.config import DEFAULT_MODEL_NAME, apply_env_overrides, load_config, parse_config
from spillover.route_table import routes_from_config


def test_embedded_default_serves_smollm2_on_one_cpu_replica() -> None:
    config = load_config(None, env={})
    (model,) = config.models
    assert model.name == DEFAULT_MODEL_NAME
    assert model.source == f"builtin:{DEFAULT_MODEL_NAME}"
    assert model.accelerator == "cpu"
    assert model.replicas.at_deploy == 1
    assert config.auth.enabled is False
    # Serve's default of 5 concurrent requests would queue behind one slow stream.
    assert config.ingress.max_ongoing_requests > 5


def test_environment_overrides_nested_fields_and_list_items() -> None:
    env = {"SPILLOVER__SERVER__PORT": "9001", "SPILLOVER__MODELS__0__REPLICAS__MAX": "3", "SPILLOVER__AUTH__ENABLED": "true"}
    config = load_config(None, env=env)
    assert config.server.port == 9001
    assert config.models[0].replicas.max == 3
    assert config.auth.enabled is True


def test_override_of_a_missing_list_item_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SPILLOVER__MODELS__5__NAME"):
        apply_env_overrides({"models": []}, {"SPILLOVER__MODELS__5__NAME": "x"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"models": [{"name": "m", "source": "s", "replicas": {"min": 3, "max": 1}}]}, "models.0.replicas"),
        ({"models": [{"name": "m", "source": "s", "replcas": {}}]}, "models.0.replcas"),
        ({"models": [{"name": "m", "source": "s"}], "server": {"port": 0}}, "server.port"),
        ({"models": []}, "models"),
        ({"models": [{"name": "m", "source": "s", "accelerator": "A100"}]}, "models.0"),
        ({"models": [{"name": "m", "source": "s"}, {"name": "m", "source": "t"}]}, "(top level)"),
        ({"models": [{"name": "m", "source": "s"}], "routes": {"m": {"local_start_timeout_s": 30}}}, "(top level)"),
        ({"models": [{"name": "m", "source": "s"}], "batch": {"hosted": {"provider": "nowhere"}}}, "(top level)"),
        ({"models": [{"name": "m", "source": "s"}], "routes": {"m": {"compression": {"ratio": 0.5}}}}, "routes.m.compression.ratio"),
        ({"models": [{"name": "m", "source": "s"}], "cache": {"semantic": {"steering": {"target": 0}}}}, "cache.semantic.steering.target"),
    ],
)
def test_bad_config_fails_with_one_message_naming_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, origin="x.yaml")
    message = str(info.value)
    assert message.startswith(f"x.yaml: {field}:"), message
    assert "\n" not in message


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar, env={})


def test_cli_reports_config_errors_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spillover.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{name: m, source: s, replicas: {min: -1}}]\n")
    assert main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "models.0.replicas.min" in err and "Traceback" not in err


def test_a_routes_start_timeout_reaches_its_dispatch_route() -> None:
    config = parse_config({"models": [{"name": "m", "source": "s"}], "routes": {"m": {"local_start_timeout_s": 0.5}, "n": {"local_model": "m"}}})
    routes = routes_from_config(config)
    assert routes["m"].local_start_timeout_s == 0.5
    assert routes["n"].local_start_timeout_s is None
