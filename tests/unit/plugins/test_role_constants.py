"""Values a role must check before its modules run, kept in the role's vars (a role cannot import module_utils):
each must equal the module_utils constant the module itself checks with."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import SYSTEM_DIRECTORIES

ROOT = Path(__file__).resolve().parents[3]


def test_registry_role_refuses_the_system_directories_registry_container_refuses():
    role_vars = yaml.safe_load((ROOT / "roles" / "registry" / "vars" / "main.yml").read_text())
    listed = role_vars["registry__system_dirs"]
    assert len(listed) == len(set(listed))
    assert set(listed) == SYSTEM_DIRECTORIES
