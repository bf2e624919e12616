"""site.yml end to end, twice: the second run changes nothing.

Runs with this suite's own port, container name and data directory overriding the
registry_* and publish_* variables.
"""

from __future__ import annotations

import json

import pytest

from support import ROOT
from support.effective import effective
from support.isolation import PREFIX, REGISTRY_IMAGE, TEST_LABEL, port
from support.registry import client
from support.runner import recap, run_playbook

from .conftest import docker


def test_site_twice(workdir):
    context = workdir / "demo"
    context.mkdir()
    dockerfile = "FROM scratch\nLABEL %s=%s\nCOPY marker.txt /marker.txt\n" % (TEST_LABEL, PREFIX)
    (context / "Dockerfile").write_text(dockerfile)
    (context / "marker.txt").write_text("site %s\n" % workdir.name)
    image = PREFIX + "site-demo"
    registry = "localhost:%d" % port(0)
    extra = {
        "dockhand_hosts": "localhost",
        "registry_container_name": PREFIX + "site",
        "registry_image": REGISTRY_IMAGE,
        "registry_port": port(0),
        "registry_data_path": str(workdir / "data"),
        "registry_image_build_dir": str(workdir / "registry-image"),
        "registry_wait_timeout": 30,
        "publish_registry": registry,
        "publish_build_dir": str(workdir / "build"),
        "publish_builds": [{"name": image + ":1.0", "src": str(context)}],
        "publish_images": [{"name": image, "tag": "1.0"}],
    }
    runs = []
    outputs = []
    # Check mode on a converged host (check_mode_site_converged): after the real runs, --check on the converged host predicts changed=0
    # too (the demo image build included: its context did not change).
    for args in ((), (), ("--check",)):
        done = run_playbook(ROOT / "site.yml", extra, args=args)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            pytest.fail("site.yml %s failed (rc %d):\n%s" % (" ".join(args), done.returncode, output[-4000:]), pytrace=False)
        runs.append(recap(output))
        outputs.append(output)
    first, second, check = runs
    assert first["changed"] > 0 and first["failed"] == 0
    assert second["changed"] == 0, "second run of site.yml changed %d tasks" % second["changed"]
    assert check["changed"] == 0, "site.yml --check on a converged host reports changed=%d" % check["changed"]

    # The registry serves the demo image with the digest the engine recorded for it.
    served = client("127.0.0.1:%d" % port(0)).digest(image, "1.0")
    assert served
    digests = json.loads(docker("image", "inspect", "-f", "{{json .RepoDigests}}", "%s/%s:1.0" % (registry, image)))
    assert "%s/%s@%s" % (registry, image, served) in digests
    assert docker("inspect", "-f", "{{.State.Running}}", PREFIX + "site").strip() == "true"
    # The role's runtime settings: the registry drains on stop (its configuration file, once the environment), and
    # runs with the role's Go GC target.
    container = json.loads(docker("inspect", PREFIX + "site"))[0]
    env = container["Config"]["Env"]
    assert effective(container)["http.draintimeout"] == "10s" and "GOGC=200" in env, env

    # The summary at the end, without -v: address, what the registry holds, what this run published.
    digest = served
    # (the YAML callback folds long lines: compare with whitespace collapsed)
    summary = " ".join(outputs[0].split("TASK [Summary]", 1)[1].split())
    assert "registry %s: 1 repositories, 1 tags" % registry in summary
    assert "%s: 1.0" % image in summary
    assert "published %s/%s:1.0 %s pushed now" % (registry, image, digest) in summary
    assert "published %s/%s:1.0 %s already there" % (registry, image, digest) in " ".join(outputs[1].split("TASK [Summary]", 1)[1].split())
