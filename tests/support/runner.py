"""Run playbooks and modules the way users do, and read their results: one way for every test layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from support import COLLECTIONS, ROOT
from support.isolation import DATA_ROOT

MODULES = ROOT / "plugins" / "modules"
VENV_BIN = ROOT / ".venv" / "bin"
INVENTORY = ROOT / "inventory" / "localhost.yml"


def ansible_env(docker_host: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of an Ansible run of this checkout (its ansible.cfg and collections), plain output."""
    env = dict(os.environ)
    env.update(
        PATH="%s:%s" % (VENV_BIN, env.get("PATH", "")),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_LOCAL_TEMP=str(DATA_ROOT / "ansible-tmp"),
        PYTHONPATH=str(COLLECTIONS),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    env.update(extra)
    return env


def _playbook_command(
    playbook: str | Path, vars_file: str, args: tuple[str, ...], inventory: str | Path = INVENTORY
) -> list[str]:
    binary = VENV_BIN / "ansible-playbook"
    return [str(binary) if binary.exists() else "ansible-playbook", "-i", str(inventory), str(playbook), "-e", "@" + vars_file, *args]


def role_playbook(path: Path, hosts: str, role: str, role_vars: dict[str, Any]) -> Path:
    """Write a playbook applying one role of the collection to ``hosts`` (JSON is YAML); return its path."""
    play = {"name": "%s on %s" % (role, hosts), "hosts": hosts, "gather_facts": False}
    play["roles"] = [{"role": "dockhand.registry." + role, "vars": role_vars}]
    path.write_text(json.dumps([play], indent=2))
    return path


def run_playbook(
    playbook: str | Path,
    extra_vars: dict[str, Any] | None = None,
    docker_host: str | None = None,
    *,
    args: tuple[str, ...] = (),
    timeout: int = 600,
    env: dict[str, str] | None = None,
    inventory: str | Path = INVENTORY,
) -> subprocess.CompletedProcess:
    """``ansible-playbook -i inventory playbook -e @vars *args`` (inventory/localhost.yml unless told); the completed
    process."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars or {}, handle)
    try:
        return subprocess.run(
            _playbook_command(playbook, handle.name, args, inventory),
            cwd=ROOT, env=env or ansible_env(docker_host), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)


def start_playbook(
    playbook: str | Path, extra_vars: dict[str, Any], docker_host: str | None, log: Path, *, new_session: bool = False
) -> subprocess.Popen:
    """Start ``ansible-playbook`` in the background (output to ``log``; in a process group of its own with
    ``new_session``, so that a test can kill it whole)."""
    vars_file = log.with_suffix(".vars.json")
    vars_file.write_text(json.dumps(extra_vars))
    return subprocess.Popen(
        _playbook_command(playbook, str(vars_file), ()),
        cwd=ROOT, env=ansible_env(docker_host), stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )  # fmt: skip


def run_module(name: str, args: dict[str, Any], docker_host: str | None = None, check: bool = False) -> dict:
    """Run module ``name`` once, as Ansible does (its args in a JSON file); return its result."""
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    try:
        proc = subprocess.run(
            [os.environ.get("PYTHON", sys.executable), str(MODULES / ("%s.py" % name)), handle.name],
            env=ansible_env(docker_host), capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        # Not JSON: a crash (traceback). Report it as a failure the assertions will show.
        return {"failed": True, "crashed": True, "msg": proc.stdout + proc.stderr}


def recaps(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters (ok, changed, failed, ...) of every host: ``{host: {counter: value}}``."""
    found: dict[str, dict[str, int]] = {}
    for line in output.splitlines():
        host, _sep, counters = line.partition(" : ")
        if host.strip() and " " not in host.strip() and "changed=" in counters and "ok=" in counters:
            found[host.strip()] = {k: int(v) for k, v in (item.split("=") for item in counters.split())}
    return found


def recap(output: str, host: str = "localhost") -> dict[str, int]:
    """The PLAY RECAP counters (ok, changed, failed, ...) of ``host``."""
    found = recaps(output)
    if host not in found:
        raise AssertionError("no PLAY RECAP line for %s in the output:\n%s" % (host, output[-3000:]))
    return found[host]


def failure_messages(output: str) -> list[str]:
    """The ``msg`` of each failed task in ``ansible-playbook`` output (the YAML callback may wrap them)."""
    messages: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(("fatal:", "failed:")):
            continue
        for j in range(i + 1, len(lines)):
            stripped = lines[j].strip()
            if not lines[j].startswith(" "):
                break
            if stripped.startswith("msg:"):
                indent = len(lines[j]) - len(lines[j].lstrip())
                parts = [stripped[4:].strip()]
                for follow in lines[j + 1:]:
                    if not follow.strip() or len(follow) - len(follow.lstrip()) <= indent:
                        break
                    parts.append(follow.strip())
                text = " ".join(parts)
                if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
                    text = text[1:-1].replace("''", "'")
                messages.append(text)
                break
    return messages


UNCLEAR = ("MODULE FAILURE", "Traceback (most recent call last)", "module_stderr", "See stdout/stderr", 'File "/')


def assert_clear(message: str, output: str = "") -> str:
    """A failure a user can act on: one line, and neither the message nor the run's output is a crash (a ``MODULE
    FAILURE``, a Python traceback). Returns the message."""
    assert message and "\n" not in message.strip(), "not one line: %r" % message
    for marker in UNCLEAR:
        assert marker not in message, "a crash, not a clear message: %r" % message[:500]
        assert marker not in output, "the run crashed (%s):\n%s" % (marker, output[-3000:])
    return message
