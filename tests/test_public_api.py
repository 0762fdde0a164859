"""Every name a module exports in ``__all__`` exists (the public surface cannot drift)."""

import importlib
import pkgutil

import pytest

PACKAGES = ["contracts", "stores", "webio", "fallback", "access", "autoscaler", "costbook", "costlevers", "serving", "spillover"]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for exported in getattr(module, "__all__", []):
        assert hasattr(module, exported), f"{name}.__all__ lists missing {exported!r}"
