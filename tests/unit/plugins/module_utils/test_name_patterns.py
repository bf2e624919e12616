"""Reference, tag, registry, user, container, volume and TLS names are matched in full (no trailing newline
slips through ``$``) and in ASCII only (no Unicode ``\\w``)."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import htpasswd, reference, tls
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import InvalidSpec, RegistrySpec


@pytest.mark.parametrize(
    "text",
    ["demo\n", "demo:latest\n", "localhost:5000\n/demo:1", "demo:ä", "demo:١٢", "démo:1", "localhost:\uff15000/demo:1",
     "demo@sha256:" + "a" * 64 + "\n"],
)
def test_reference_patterns_full_match_ascii_only(text):
    with pytest.raises(reference.InvalidReference):
        reference.parse(text)


@pytest.mark.parametrize("tag", ["latest\n", "ä", "١٢", "1\n"])
def test_tag_patterns_full_match_ascii_only(tag):
    with pytest.raises(reference.InvalidReference):
        reference.validate_tag(tag)


@pytest.mark.parametrize("registry", ["localhost:5000\n", "régistry.example", "localhost:\uff15000"])
def test_registry_patterns_full_match_ascii_only(registry):
    with pytest.raises(reference.InvalidReference):
        reference.validate_registry(registry)


def test_repository_pattern_full_match():
    with pytest.raises(reference.InvalidReference):
        reference.validate_repository("team/app\n")


@pytest.mark.parametrize("name", ["alice\n", "alice ", "ä", "al:ice", "al\tice", ""])
def test_user_name_patterns_full_match_ascii_only(name):
    with pytest.raises(htpasswd.HtpasswdError, match="invalid htpasswd user name"):
        htpasswd.validate_users([htpasswd.User(name, "pw")])


def test_user_name_ascii_punctuation_accepted():
    htpasswd.validate_users([htpasswd.User("ci-bot.2@example.org", "pw")])


def test_htpasswd_parse_ignores_hash_with_trailing_newline_inside():
    line = "alice:$2y$10$" + "a" * 53
    assert htpasswd.parse(line + "\n") == {"alice": "$2y$10$" + "a" * 53}
    assert htpasswd.parse("alice:$2y$\u0661\u0660$" + "a" * 53) == {}


@pytest.mark.parametrize("name", ["registry\n", "ä"])
def test_container_name_pattern_full_match(name):
    with pytest.raises(InvalidSpec, match="invalid container name"):
        RegistrySpec(name=name, image="registry:2", data_path="/tmp/x").validate()


def test_one_character_volume_name_accepted(tmp_path):
    RegistrySpec(name="r", image="registry:2", volume="v").validate()
    with pytest.raises(InvalidSpec, match="invalid volume name"):
        RegistrySpec(name="r", image="registry:2", volume="v\n").validate()


@pytest.mark.parametrize("name", ["rägistry.example", "registry\nexample"])
def test_tls_dns_name_pattern_full_match_ascii_only(name):
    with pytest.raises(tls.TlsError, match="invalid certificate name"):
        tls.san_entries([name])
