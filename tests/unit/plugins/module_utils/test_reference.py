from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.reference import (
    InvalidReference,
    Reference,
    parse,
    validate_registry,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("demo", Reference(None, "demo")),
        ("demo:1.0", Reference(None, "demo", "1.0")),
        ("localhost:5000/demo:1.0", Reference("localhost:5000", "demo", "1.0")),
        ("localhost/team/api", Reference("localhost", "team/api")),
        ("registry.example.com/a/b:v2", Reference("registry.example.com", "a/b", "v2")),
        ("team/api:2", Reference(None, "team/api", "2")),
        ("[::1]:5000/x:y", Reference("[::1]:5000", "x", "y")),
        ("r.io/x@sha256:" + "a" * 64, Reference("r.io", "x", None, "sha256:" + "a" * 64)),
    ],
)
def test_parse(text, expected):
    assert parse(text) == expected
    assert str(parse(text)) == text


@pytest.mark.parametrize("text", ["", "UPPER:1", "demo:", "demo:-bad", "a//b", "demo@sha256:12", "host:99999/x"])
def test_parse_rejects_naming_the_value(text):
    with pytest.raises(InvalidReference) as err:
        parse(text)
    assert repr(text) in str(err.value)


def test_registry_scheme_rejected():
    with pytest.raises(InvalidReference, match="without a scheme"):
        validate_registry("http://localhost:5000")
