# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers and fixtures shared by the scenarios' testinfra tests (see docs/molecule.md).

A scenario's ``tests/conftest.py`` puts this directory on ``sys.path`` and imports the fixtures it uses. The tests
run on the host under test itself (verifier option ``connection: local``), so they may talk HTTP to the registry
directly, through the tests' oracle (tests/support/oracle.py, which shares no code with the collection); everything
else goes through testinfra's ``host``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from support import oracle


def scenario_vars(scenario_dir: Path) -> dict[str, Any]:
    """The variables of a scenario: ``all.vars`` of its inventory/hosts.yml (literal values only)."""
    with open(scenario_dir / "inventory" / "hosts.yml", encoding="utf-8") as stream:
        return yaml.safe_load(stream)["all"]["vars"]


class Registry(oracle.Registry):
    """The registry at ``address`` as the tests ask it (plain HTTP, no auth): the tests' oracle (tests/support/oracle.py),
    which shares no code with the collection: ``catalog()``, ``tags(repo)``, ``digest(repo, tag)`` (read by GET, its
    digest checked against the bytes), ``snapshot()``, ``verify_tag_whole(repo, tag)``."""

    def __init__(self, address: str) -> None:
        super().__init__(address, scheme="http")


def expected_content(images: list[dict[str, Any]]) -> dict[str, set[str]]:
    """``{repository: {tags}}`` the publish role's list of images should leave in the registry."""
    content: dict[str, set[str]] = {}
    for image in images:
        content.setdefault(image.get("repository") or image["name"], set()).add(str(image.get("tag") or "latest"))
    return content


def inspect(host: Any, *args: str) -> Any:
    """``docker inspect`` of one object, parsed; None when the engine does not know it."""
    result = host.run("docker inspect %s" % " ".join(args))
    if result.rc != 0:
        return None
    return json.loads(result.stdout)[0]


@pytest.fixture(scope="module")
def registry(mol_vars: dict[str, Any]) -> Registry:
    return Registry("%s:%s" % (mol_vars["registry_bind_address"], mol_vars["registry_port"]))


@pytest.fixture(scope="module")
def container(host: Any, mol_vars: dict[str, Any]) -> dict[str, Any]:
    found = inspect(host, "--type", "container", mol_vars["registry_container_name"])
    assert found, "container %s not found" % mol_vars["registry_container_name"]
    return found


def main(argv: list[str]) -> int:
    """``python moltest.py snapshot <host:port> <container>``: print the registry's content (``{repository: {tag:
    digest}}``) and the container's ID and start time as JSON, for a later test to compare with."""
    import subprocess
    import sys

    if len(argv) != 3 or argv[0] != "snapshot":
        sys.stderr.write("usage: moltest.py snapshot <host:port> <container>\n")
        return 2
    state = json.loads(subprocess.run(["docker", "inspect", "--type", "container", argv[2]], check=True,
                                      capture_output=True, text=True).stdout)[0]
    snapshot = {
        "registry": Registry(argv[1]).snapshot(),
        "container": {"Id": state["Id"], "StartedAt": state["State"]["StartedAt"]},
    }
    print(json.dumps(snapshot, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
