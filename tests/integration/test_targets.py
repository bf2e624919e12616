"""One test per playbook tests/integration/targets/<name>/main.yml, run with ansible-playbook.

The playbooks assert themselves (each change twice: ``is changed``, then ``is not
changed``); a test passes when its playbook ends with rc 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.runner import run_playbook

TARGETS = Path(__file__).resolve().parent / "targets"
NAMES = sorted(p.parent.name for p in TARGETS.glob("*/main.yml") if not p.parent.name.startswith("_"))


@pytest.mark.parametrize("target", NAMES)
def test_target(target, dh_vars):
    done = run_playbook(TARGETS / target / "main.yml", dh_vars)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-80:])
        pytest.fail("target %s failed (rc %d):\n%s" % (target, done.returncode, tail), pytrace=False)
