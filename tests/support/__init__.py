"""The one test support package every test layer imports (unit, integration, reliability, molecule, target helpers,
benchmarks).

- :mod:`support.isolation`  name prefix, port range and data root of a test run, from one place
- :mod:`support.runner`     run a playbook or a module the way users do, read its result (PLAY RECAP, failures)
- :mod:`support.oracle`     the tests' oracle: a tiny registry reader sharing no code with the collection (standard
                            library only; digest-checks every manifest and blob it reads; ``oracle.py state`` CLI)
- :mod:`support.registry`   the oracle as the tests use it (``client``, ``tag_digests``, ``verify_pullable``); readiness wait
- :mod:`support.state`      engine (docker CLI), registries (oracle) and files of a run, read independently
- :mod:`support.pulls`      pull loops of plain ``docker pull`` that download layers every time; switches from events
- :mod:`support.secrets`    secret search in literal, base64 and URL-encoded forms
- :mod:`support.engine`     the registry-image bootstrap; a private dockerd (unix socket, or TCP with TLS)
- :mod:`support.fleet`      Debian test hosts over SSH (standard library only)
- :mod:`support.effective`  the configuration a registry container runs with (mounted file, then REGISTRY_* env)
- :mod:`support.prometheus` a real Prometheus (Debian's package) scraping a file_sd target file; its query API
- :mod:`support.unit`       unit-test stand-ins (scripted registry session, a registry in memory) and the one-line-failure check of a
                            module's ``main()`` (imported as ``ansible_collections.dockhand.registry.tests.support.unit``)

Import it as ``support`` with ``tests/`` on ``sys.path`` (pytest puts it there for tests/integration; the
molecule conftests and the target helper scripts insert it). Importing it also puts this checkout's
``collections/`` on ``sys.path``, so ``ansible_collections.dockhand.registry`` is this tree.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
