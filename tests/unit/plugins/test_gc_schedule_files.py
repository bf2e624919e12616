"""The scheduled GC runs on the registry host without the collection: the role copies the runner and the
module_utils it imports (roles/registry/tasks/gc_schedule.yml). Every module_utils the runner reaches, directly or
through another module_utils, must be in that list (a missing one fails only on the host, at the first timer run), and
none of them may import Ansible (a registry host has none installed)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
IMPORT_RE = re.compile(r"ansible_collections\.dockhand\.registry\.plugins\.module_utils\.(\w+)")
ANSIBLE_IMPORT_RE = re.compile(r"^\s*(?:from|import) ansible(?:\.|\s)", re.MULTILINE)


def _imports(path: Path) -> set[str]:
    return set(IMPORT_RE.findall(path.read_text()))


def test_scheduled_gc_copies_every_module_utils_it_imports():
    tasks = yaml.safe_load((ROOT / "roles" / "registry" / "tasks" / "gc_schedule.yml").read_text())
    copied = next(task["loop"] for task in tasks if "module_utils" in str(task.get("ansible.builtin.copy", {}).get("src")))
    needed: set[str] = set()
    todo = _imports(ROOT / "roles" / "registry" / "files" / "dockhand_registry_gc.py")
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= _imports(MODULE_UTILS / ("%s.py" % name))
    assert needed <= set(copied), "missing from gc_schedule.yml: %s" % sorted(needed - set(copied))
    importing_ansible = sorted(name for name in needed if ANSIBLE_IMPORT_RE.search((MODULE_UTILS / ("%s.py" % name)).read_text()))
    assert not importing_ansible, "the scheduled GC imports Ansible through: %s" % importing_ansible
