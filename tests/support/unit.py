"""Stand-ins and checks shared by the unit tests (tests/unit): a scripted HTTP session for RegistryClient, and the
"bad arguments fail in one line before anything is asked" check of a module's ``main()``."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient


class FakeResponse:
    """A requests.Response stand-in: status, headers, and a body (``text``; ``json()`` gives it back as given)."""

    def __init__(self, status: int = 200, headers: dict | None = None, body: object = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self._body = body
        self.text = "" if body is None else str(body)

    def json(self) -> Any:
        return self._body


class FakeSession:
    """A requests.Session stand-in: ``handler(method, url, **kwargs)`` answers every call, each kept in ``calls``."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, str, dict]] = []
        self.headers: dict = {}
        self.verify = True

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return self.handler(method, url, **kwargs)

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)


def registry_client(handler, **options) -> tuple[RegistryClient, FakeSession]:
    """A RegistryClient for ``localhost:5100`` (plain HTTP unless told) on a FakeSession answering with ``handler``."""
    session = FakeSession(handler)
    options.setdefault("scheme", "http")
    return RegistryClient("localhost:5100", session=session, **options), session


def module_fails(module, patched: str, args: dict, capsys, *fragments: str) -> dict:
    """Run ``module.main()`` with ``args``: it must fail in one line holding every fragment, without ever making
    the client ``patched`` (a name in the module: ``EngineClient``, ``RegistryClient``). The failed result."""
    with mock.patch.object(module, patched) as made, patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result.get("failed") is True, result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert "\n" not in result["msg"]
    made.assert_not_called()
    return result
