"""The scheduled replication's logic (module_utils/replication.py) against in-memory registries: sources one after the
other, a failing source recorded while the others run, the state file, credentials files, registry_info's lookup."""

from __future__ import annotations

import base64
import json
import os

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.replication import (
    ReplicationError,
    parse_sources,
    read_credentials,
    read_state,
    replicate,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable
from ansible_collections.dockhand.registry.tests.support.unit import FakeRegistry

RELEASES = ["1.0.0", "1.2.0", "1.2.5", "1.3.0-rc1", "v1.4.1", "2.0.0", "latest", "1.2-alpine", "nightly"]


class Down(FakeRegistry):
    """A registry that does not answer."""

    def _down(self, *args, **kwargs):
        raise RegistryUnreachable("registry %s is unreachable: Connection refused" % self.registry)

    ping = tags = repository_tags = get_manifest = _down


@pytest.fixture
def world():
    upstream = FakeRegistry("upstream.example:5000")
    for tag in RELEASES:
        upstream.add_image("team/app", tag, tag.encode())
    upstream.add_image("team/tool", "3.1", b"tool")
    registries = {r.registry: r for r in (upstream, FakeRegistry("127.0.0.1:5000"), Down("gone.example:5000"))}

    def make_client(address, username, password, **options):
        registries[address].login = (username, password)
        return registries[address]

    return registries, make_client


def params(tmp_path, *sources) -> dict:
    return {"registry": "127.0.0.1:5000", "workers": 3, "state_file": str(tmp_path / "state.json"), "sources": list(sources)}


UP = {"name": "up", "registry": "upstream.example:5000", "repositories": ["team/app", "team/tool"], "tag_semver": ">=1.2,<3",
      "dest_prefix": "mirror"}
GONE = {"name": "gone", "registry": "gone.example:5000", "repositories": ["x/y"], "tag_pattern": ".*"}


def test_semver_source_copies_exactly_the_releases_in_range_and_a_second_run_nothing(world, tmp_path):
    registries, make_client = world
    dest = registries["127.0.0.1:5000"]
    first = replicate(params(tmp_path, UP), make_client=make_client)
    assert sorted(first["synced"]) == ["127.0.0.1:5000/mirror/team/app:%s" % t for t in ("1.2.0", "1.2.5", "2.0.0", "v1.4.1")]
    assert sorted(dest.tags("mirror/team/app")) == ["1.2.0", "1.2.5", "2.0.0", "v1.4.1"]
    assert "mirror/team/tool" not in dest.manifests  # 3.1 is outside the range
    state = json.loads((tmp_path / "state.json").read_text())
    source = state["sources"][0]
    assert state["ok"] and source["ok"] and source["tags_copied"] == 4 and source["last_success"] == source["finished"]
    assert source["repositories"]["team/app"] == {"listed": 9, "not_matching_pattern": 0, "not_versions": 3, "outside_range": 2, "chosen": 4}

    again = replicate(params(tmp_path, UP), make_client=make_client)
    assert not again["changed"] and again["state"]["sources"][0]["tags_present"] == 4


def test_a_source_that_fails_is_recorded_and_the_others_run(world, tmp_path):
    registries, make_client = world
    replicate(params(tmp_path, UP), make_client=make_client)
    registries["upstream.example:5000"].add_image("team/app", "1.5.0", b"new")
    with pytest.raises(ReplicationError) as caught:
        replicate(params(tmp_path, GONE, UP), make_client=make_client)
    message = str(caught.value)
    assert message == "replication failed for 1 of 2 sources: gone: registry gone.example:5000 is unreachable: Connection refused"
    state = json.loads((tmp_path / "state.json").read_text())
    gone, up = state["sources"]
    assert not state["ok"] and not gone["ok"] and gone["error"].endswith("Connection refused") and gone["last_success"] is None
    assert up["ok"] and up["copied"] == ["127.0.0.1:5000/mirror/team/app:1.5.0@%s" % registries["upstream.example:5000"].manifests["team/app"]["1.5.0"].digest]
    assert caught.value.results == state["sources"] and caught.value.result["synced"] == ["127.0.0.1:5000/mirror/team/app:1.5.0"]

    # The upstream goes down: its last success stays what it was.
    registries["upstream.example:5000"] = Down("upstream.example:5000")
    with pytest.raises(ReplicationError):
        replicate(params(tmp_path, UP), make_client=make_client)
    after = json.loads((tmp_path / "state.json").read_text())["sources"][0]
    assert not after["ok"] and after["last_success"] == up["finished"]


def test_check_mode_says_what_would_be_copied_and_writes_nothing(world, tmp_path):
    registries, make_client = world
    check = replicate(params(tmp_path, UP), check_mode=True, make_client=make_client)
    assert check["changed"] and len(check["actions"]) == 4 and all(a.startswith("would copy ") for a in check["actions"])
    assert registries["127.0.0.1:5000"].writes == [] and not (tmp_path / "state.json").exists()


def test_a_missing_repository_fails_its_source_but_the_rest_of_it_copies(world, tmp_path):
    _registries, make_client = world
    source = dict(UP, repositories=["team/app", "team/nope"])
    with pytest.raises(ReplicationError, match=r"up: repository team/nope is not in registry upstream\.example:5000"):
        replicate(params(tmp_path, source), make_client=make_client)
    assert json.loads((tmp_path / "state.json").read_text())["sources"][0]["tags_copied"] == 4


def test_credentials_file_only_when_only_its_owner_reads_it(world, tmp_path):
    registries, make_client = world
    secret = tmp_path / "up.json"
    secret.write_text(json.dumps({"username": "mirror", "password": "s3cret"}))
    os.chmod(secret, 0o644)
    with pytest.raises(DockhandError, match=r"credentials_file .*up.json is readable by others \(mode 0644\): make it 0600"):
        replicate(params(tmp_path, dict(UP, credentials_file=str(secret))), make_client=make_client)
    os.chmod(secret, 0o600)
    replicate(params(tmp_path, dict(UP, credentials_file=str(secret))), make_client=make_client)
    assert registries["upstream.example:5000"].login == ("mirror", "s3cret")


def test_credentials_from_a_docker_client_configuration(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"https://ghcr.io": {"auth": base64.b64encode(b"bot:tok:en").decode()}}}))
    os.chmod(config, 0o600)
    assert read_credentials(str(config), "ghcr.io") == ("bot", "tok:en")
    with pytest.raises(DockhandError, match=r"holds no login for quay\.io"):
        read_credentials(str(config), "quay.io")


@pytest.mark.parametrize(
    "sources, message",
    [
        ([dict(UP), dict(UP)], "the name up is given twice"),
        ([dict(UP, tags=["1"])], "unknown keys tags"),
        ([{"registry": "upstream.example:5000", "repositories": ["a"]}], "give tag_pattern, tag_semver or tag_limit"),
        ([dict(UP, repositories=[])], "give repositories"),
        ([dict(UP, tag_semver="^1")], "invalid tag_semver '^1'"),
        ([dict(UP, registry="https://upstream.example")], "give host[:port] without a scheme"),
        ([dict(UP, platforms=["linux"])], "invalid platform 'linux'"),
    ],
)
def test_bad_sources_fail_before_anything_is_asked(sources, message):
    with pytest.raises(DockhandError, match=message.replace("[", r"\[").replace("^", r"\^")):
        parse_sources(sources)


def test_registry_info_finds_the_state_of_a_registry_on_this_host(tmp_path):
    (tmp_path / "registry.json").write_text(json.dumps({"registry": "127.0.0.1:5000", "finished": "2026-12-07T03:00:04Z", "ok": True}))
    (tmp_path / "other.json").write_text(json.dumps({"registry": "127.0.0.1:5001", "finished": "2026-12-07T03:00:04Z"}))
    found = read_state("localhost:5000", directory=str(tmp_path))
    assert found["ok"] and found["age_seconds"] > 0
    assert read_state("localhost:5002", directory=str(tmp_path)) is None
    assert read_state("registry.example.com:5000", directory=str(tmp_path)) is None  # not this host: only when given
    assert read_state("registry.example.com:5000", path=str(tmp_path / "other.json"))["registry"] == "127.0.0.1:5001"
    with pytest.raises(DockhandError, match=r"replication_state .*nope\.json cannot be read"):
        read_state("localhost:5000", path=str(tmp_path / "nope.json"))
