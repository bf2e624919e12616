"""Helpers of the reliability tests (test_bad_input.py, test_resilience.py).

They drive the collection the way users do (modules run as Ansible runs them, roles through ``ansible-playbook``),
read the registry through the collection's RegistryClient, and can run a private Docker engine, so that a test may
restart "the daemon" without touching the shared one. All of that comes from the test support package
(tests/support), which they import; what is here is only what these two files need and nothing else does.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker

from support.isolation import name
from support.runner import run_playbook

# Prefix of every name the reliability tests give (containers, images, repositories): the run's DH_PREFIX.
REL = name("rel")


def run_role_failure(role: str, role_vars: dict[str, Any], docker_host: str, workdir: Path) -> dict:
    """Include ``role`` with ``role_vars``; return the failed task's result (``{}`` if nothing failed)."""
    out = workdir / ("%s-failure.json" % role)
    out.unlink(missing_ok=True)
    playbook = workdir / ("%s-failure.yml" % role)
    playbook.write_text(
        json.dumps(
            [
                {
                    "name": "Run the role and keep the error",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "block": [
                                {
                                    "name": "Run the role",
                                    "ansible.builtin.include_role": {"name": "dockhand.registry.%s" % role},
                                    "vars": role_vars,
                                }
                            ],
                            "rescue": [
                                {
                                    "name": "Keep the error",
                                    "ansible.builtin.copy": {
                                        "content": "{{ ansible_failed_result | to_json }}",
                                        "dest": str(out),
                                        "mode": "0644",
                                    },
                                }
                            ],
                        }
                    ],
                }
            ]
        )
    )
    proc = run_playbook(playbook, {}, docker_host)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()) if out.exists() else {}


# -- images -----------------------------------------------------------------------------------
def build_image(api: docker.APIClient, tag: str, payload: bytes) -> str:
    """Build ``tag`` FROM scratch with one file holding ``payload``; return the image ID."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY payload /payload\n"), ("payload", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    for chunk in api.build(fileobj=buffer, custom_context=True, tag=tag, rm=True, decode=True):
        if "error" in chunk:
            raise AssertionError("build of %s failed: %s" % (tag, chunk["error"]))
    return api.inspect_image(tag)["Id"]


# -- the registry container --------------------------------------------------------------------
def garbage_collect_dry_run(api: docker.APIClient, container: str) -> str:
    """``registry garbage-collect --dry-run`` inside the container; its output (raises on errors)."""
    exec_id = api.exec_create(
        container, ["/bin/registry", "garbage-collect", "--dry-run", "/etc/docker/registry/config.yml"]
    )
    output = api.exec_start(exec_id).decode("utf-8", "replace")
    code = api.exec_inspect(exec_id)["ExitCode"]
    assert code == 0, "garbage-collect --dry-run exited %d: %s" % (code, output[-2000:])
    assert "error" not in output.lower(), output[-2000:]
    return output
