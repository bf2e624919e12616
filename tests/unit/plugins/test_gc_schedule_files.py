"""The scheduled jobs (the GC and the replication) run on the registry host without the collection: the role copies
each runner and the module_utils it imports (roles/registry/tasks/schedule.yml, with each job's list given where it is
included: maintenance.yml for the GC, replication.yml for the replication). Every module_utils a runner reaches,
directly or through another module_utils, must be in its list (a missing one fails only on the host, at the first
timer run), and none of them may import Ansible (a registry host has none installed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
TASKS = ROOT / "roles" / "registry" / "tasks"
IMPORT_RE = re.compile(r"ansible_collections\.dockhand\.registry\.plugins\.module_utils\.(\w+)")
ANSIBLE_IMPORT_RE = re.compile(r"^\s*(?:from|import) ansible(?:\.|\s)", re.MULTILINE)


def _imports(path: Path) -> set[str]:
    return set(IMPORT_RE.findall(path.read_text()))


def _job(tasks_file: str, job: str) -> dict:
    tasks = yaml.safe_load((TASKS / tasks_file).read_text())
    return next(task["vars"] for task in tasks
                if task.get("ansible.builtin.include_tasks") == "schedule.yml" and task["vars"]["registry__job"] == job)


def test_schedule_copies_the_module_utils_list_it_is_given():
    tasks = yaml.safe_load((TASKS / "schedule.yml").read_text())
    copied = next(task["loop"] for task in tasks if "module_utils" in str(task.get("ansible.builtin.copy", {}).get("src")))
    assert copied == "{{ registry__job_modules }}"


@pytest.mark.parametrize("tasks_file, job", [("maintenance.yml", "gc"), ("replication.yml", "replication")])
def test_scheduled_gc_copies_every_module_utils_it_imports(tasks_file, job):
    job_vars = _job(tasks_file, job)
    copied = job_vars["registry__job_modules"]
    needed: set[str] = set()
    todo = _imports(ROOT / "roles" / "registry" / "files" / job_vars["registry__job_runner"])
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= _imports(MODULE_UTILS / ("%s.py" % name))
    assert needed <= set(copied), "missing from %s: %s" % (tasks_file, sorted(needed - set(copied)))
    importing_ansible = sorted(name for name in needed if ANSIBLE_IMPORT_RE.search((MODULE_UTILS / ("%s.py" % name)).read_text()))
    assert not importing_ansible, "the scheduled %s imports Ansible through: %s" % (job, importing_ansible)
