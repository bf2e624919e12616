from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.reference import (
    InvalidReference,
    Reference,
    parse,
    validate_registry,
    validate_repository,
    validate_tag,
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


@pytest.mark.parametrize(
    "text, registry, repository, tag",
    [
        ("localhost:5000/demo", "localhost:5000", "demo", None),
        ("127.0.0.1:5100/a/b/c:1", "127.0.0.1:5100", "a/b/c", "1"),
        ("my-host.lan/x_y__z:tag-1.2", "my-host.lan", "x_y__z", "tag-1.2"),
        ("team/api", None, "team/api", None),
    ],
)
def test_parse_components(text, registry, repository, tag):
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)


def test_name_and_default_tag():
    ref = parse("localhost:5000/demo")
    assert ref.name == "localhost:5000/demo"
    assert ref.tag_or_default == "latest"
    assert parse("demo:2").tag_or_default == "2"


@pytest.mark.parametrize("registry", ["localhost", "localhost:5000", "r.example.com", "10.0.0.1:443", "[::1]:5000"])
def test_validate_registry_accepts(registry):
    assert validate_registry(registry) == registry


@pytest.mark.parametrize("registry", ["", "host:0", "host:65536", "bad host", "host/path", "https://r.io"])
def test_validate_registry_rejects_naming_the_value(registry):
    with pytest.raises(InvalidReference) as err:
        validate_registry(registry)
    assert repr(registry) in str(err.value)


@pytest.mark.parametrize("repository", ["Upper", "a//b", "-a", "a-", ""])
def test_validate_repository_rejects(repository):
    with pytest.raises(InvalidReference) as err:
        validate_repository(repository)
    assert repr(repository) in str(err.value)


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a:b", "a/b"])
def test_validate_tag_rejects(tag):
    with pytest.raises(InvalidReference):
        validate_tag(tag)


def test_tag_max_length_accepted():
    assert validate_tag("a" * 128) == "a" * 128


def test_name_too_long():
    with pytest.raises(InvalidReference, match="longer than 255"):
        parse("r.io/" + "/".join(["abcdefghij"] * 30))


def test_errors_are_one_line():
    for text in ["UPPER", "demo:-x", "x@sha256:1", "h:0/x"]:
        with pytest.raises(InvalidReference) as err:
            parse(text)
        assert "\n" not in str(err.value)


def test_invalid_reference_is_a_collection_error():
    # The modules report DockhandError as one line; a bad reference must not crash them.
    from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError

    assert issubclass(InvalidReference, DockhandError)
    assert issubclass(InvalidReference, ValueError)
