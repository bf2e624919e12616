"""registry_gc killed during its read-only window: the next run makes the registry read-write again.

The setup (a registry with deletes on, two images pushed, retention keeping one) leaves blobs to collect,
so the GC run opens a read-only window. The playbook running it is killed with SIGKILL (the whole process
group, module included: no ``finally`` runs) as soon as the container carries the read-only setting. The
registry is then read-only (or half-way through the switch); the next registry_gc run repairs it first:
read-write, the data kept, a push works.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from support.isolation import PREFIX
from support.registry import client
from support.runner import run_playbook, start_playbook

from .conftest import docker

SETUP = """
- hosts: localhost
  gather_facts: false
  tasks:
    - dockhand.registry.registry_container:
        name: "{{ dh_prefix }}gci"
        image: "{{ dh_registry_image }}"
        port: "{{ dh_port }}"
        data_path: "{{ dh_dir }}/data"
        env: {REGISTRY_STORAGE_DELETE_ENABLED: "true"}
    - ansible.builtin.shell: |
        set -e
        for v in 1 2; do
          d={{ dh_dir | quote }}/ctx-$v; mkdir -p "$d"
          printf 'FROM scratch\\nLABEL io.dockhand.test=%s\\nCOPY m /m\\n' {{ dh_prefix | quote }} > "$d/Dockerfile"
          head -c 50000 /dev/urandom > "$d/m"
          docker build -q -t 127.0.0.1:{{ dh_port }}/{{ dh_prefix }}gci:$v "$d" >/dev/null
          docker push -q 127.0.0.1:{{ dh_port }}/{{ dh_prefix }}gci:$v >/dev/null
        done
    - dockhand.registry.registry_prune:
        registry: "127.0.0.1:{{ dh_port }}"
        rules: [{keep_last: 1}]
"""

GC = """
- hosts: localhost
  gather_facts: false
  tasks:
    - dockhand.registry.registry_gc:
        name: "{{ dh_prefix }}gci"
      register: gc
    - ansible.builtin.copy:
        content: "{{ gc | to_json }}"
        dest: "{{ dh_dir }}/gc.json"
        mode: "0644"
"""


def _env_of(name: str) -> list[str]:
    text = docker("container", "inspect", "--format", "{{json .Config.Env}}", name, check=False).strip()
    return json.loads(text) if text else []


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the module may sit in a session of its own)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_gc_killed_in_window_is_repaired(dh_vars, workdir):
    (workdir / "setup.yml").write_text(SETUP)
    (workdir / "gc.yml").write_text(GC)
    done = run_playbook(workdir / "setup.yml", dh_vars)
    assert done.returncode == 0, done.stdout[-3000:]
    name = PREFIX + "gci"

    run = start_playbook(workdir / "gc.yml", dh_vars, None, workdir / "gc-killed.log", new_session=True)
    deadline = time.monotonic() + 60
    seen = False
    while time.monotonic() < deadline and run.poll() is None:
        if any(e.startswith("REGISTRY_STORAGE_MAINTENANCE_READONLY=") for e in _env_of(name)):
            seen = True
            break
        time.sleep(0.02)
    # SIGKILL to the playbook and every process under it, the module included: nothing can clean up.
    below = _descendants(run.pid)
    os.killpg(run.pid, signal.SIGKILL)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    run.wait()
    print("killed %d processes" % (len(below) + 1))
    assert seen, "the GC run never switched the registry to read-only"
    time.sleep(1)
    left = docker("ps", "-a", "--filter", "name=^/" + name, "--format", "{{.Names}} {{.Status}}", check=False)
    print("after the kill:", left.strip().replace("\n", "; "))

    # The next run repairs first, then collects.
    done = run_playbook(workdir / "gc.yml", dh_vars)
    assert done.returncode == 0, done.stdout[-3000:]
    result = json.loads((workdir / "gc.json").read_text())
    print("repair run actions:", result["actions"])
    assert "left read-only by an interrupted run" in result["actions"][0]
    assert not any("MAINTENANCE" in e for e in _env_of(name))
    assert any(e == "REGISTRY_STORAGE_DELETE_ENABLED=true" for e in _env_of(name))
    assert client("127.0.0.1:%d" % dh_vars["dh_port"]).tags(PREFIX + "gci") == ["2"]
    pushed = subprocess.run(["docker", "tag", "127.0.0.1:%d/%sgci:2" % (dh_vars["dh_port"], PREFIX),
                             "127.0.0.1:%d/%sgci:after" % (dh_vars["dh_port"], PREFIX)], check=False)
    assert pushed.returncode == 0
    pushed = subprocess.run(["docker", "push", "-q", "127.0.0.1:%d/%sgci:after" % (dh_vars["dh_port"], PREFIX)],
                            capture_output=True, text=True, check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert docker("ps", "-a", "--filter", "name=^/%s-dockhand-old" % name, "-q", check=False).strip() == ""
