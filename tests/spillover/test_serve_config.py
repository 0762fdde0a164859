import yaml

from contracts.deployments import APP_NAME
from spillover.cli import main
from spillover.config import load_config
from spillover.serve_config import IMPORT_PATH, serve_config


def test_print_serve_config_is_what_build_app_receives(capsys) -> None:
    assert main(["serve", "--print-serve-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    (app,) = printed["applications"]
    assert app["name"] == APP_NAME and app["import_path"] == IMPORT_PATH
    # The args round-trip into the same validated config the CLI deploys.
    assert load_config(None, env={}).model_dump(mode="json") == app["args"]
    assert printed["http_options"]["port"] == 8000


def test_serve_config_carries_server_options() -> None:
    config = load_config(None, env={"SPILLOVER__SERVER__PORT": "8123", "SPILLOVER__SERVER__HOST": "0.0.0.0"})
    assert serve_config(config)["http_options"] == {"host": "0.0.0.0", "port": 8123, "request_timeout_s": 600.0}
