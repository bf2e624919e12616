"""site.yml end to end, twice: the second run changes nothing.

Runs with this suite's own port, container name and data directory overriding the
registry_* and publish_* variables.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from .conftest import PORT_BASE, PREFIX, REGISTRY_IMAGE, ROOT, TEST_LABEL, ansible_playbook, docker

RECAP_RE = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(output: str) -> dict[str, int]:
    match = RECAP_RE.search(output)
    assert match, "no PLAY RECAP in:\n" + output[-3000:]
    ok, changed, unreachable, failed = map(int, match.groups())
    return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


def test_site_twice(workdir):
    context = workdir / "demo"
    context.mkdir()
    dockerfile = "FROM scratch\nLABEL %s=%s\nCOPY marker.txt /marker.txt\n" % (TEST_LABEL, PREFIX)
    (context / "Dockerfile").write_text(dockerfile)
    (context / "marker.txt").write_text("site %s\n" % workdir.name)
    image = PREFIX + "site-demo"
    registry = "localhost:%d" % PORT_BASE
    extra = {
        "dockhand_hosts": "localhost",
        "registry_container_name": PREFIX + "site",
        "registry_image": REGISTRY_IMAGE,
        "registry_port": PORT_BASE,
        "registry_data_path": str(workdir / "data"),
        "registry_image_build_dir": str(workdir / "registry-image"),
        "registry_wait_timeout": 30,
        "publish_registry": registry,
        "publish_build_dir": str(workdir / "build"),
        "publish_builds": [{"name": image + ":1.0", "src": str(context)}],
        "publish_images": [{"name": image, "tag": "1.0"}],
    }
    runs = []
    # Issue 10 (check_mode_site_converged): after the real runs, --check on the converged host predicts changed=0
    # too (the demo image build included: its context did not change).
    for args in ((), (), ("--check",)):
        done = ansible_playbook(ROOT / "site.yml", extra, *args)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            pytest.fail("site.yml %s failed (rc %d):\n%s" % (" ".join(args), done.returncode, output[-4000:]), pytrace=False)
        runs.append(recap(output))
    first, second, check = runs
    assert first["changed"] > 0 and first["failed"] == 0
    assert second["changed"] == 0, "second run of site.yml changed %d tasks" % second["changed"]
    assert check["changed"] == 0, "site.yml --check on a converged host reports changed=%d" % check["changed"]

    # The registry serves the demo image with the digest the engine recorded for it.
    answer = requests.head(
        "http://127.0.0.1:%d/v2/%s/manifests/1.0" % (PORT_BASE, image),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert answer.status_code == 200
    digests = json.loads(docker("image", "inspect", "-f", "{{json .RepoDigests}}", "%s/%s:1.0" % (registry, image)))
    assert "%s/%s@%s" % (registry, image, answer.headers["Docker-Content-Digest"]) in digests
    assert docker("inspect", "-f", "{{.State.Running}}", PREFIX + "site").strip() == "true"
