"""Results that match what happened when some items fail: ``changed`` true when anything changed, each item's fields
its own outcome, and one line naming every failed item once, grouped by cause (publish.py, sync.py, args.run_module)."""

from __future__ import annotations

import hashlib
import json
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockhand.registry.plugins.module_utils.args import run_module
from ansible_collections.dockhand.registry.plugins.module_utils.common import PartialFailure, failed_items, grouped_causes
from ansible_collections.dockhand.registry.plugins.module_utils.diagnose import PushDiagnosis
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError
from ansible_collections.dockhand.registry.plugins.module_utils.publish import ItemsFailed, TagItem, publish_images, push_images
from ansible_collections.dockhand.registry.plugins.module_utils.registry import Manifest
from ansible_collections.dockhand.registry.plugins.module_utils.sync import SyncError, sync_images
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable

REG = "localhost:5100"
DOWN = "registry localhost:5100 is unreachable: Connection refused"


@pytest.fixture(autouse=True)
def quick_comeback(monkeypatch):
    monkeypatch.setattr(PushDiagnosis, "back_within", 0.3)


def sha(char: str) -> str:
    return "sha256:" + char * 64


# -- one line per cause -------------------------------------------------------------------
def test_failed_items_names_each_item_once_grouped_by_cause():
    failures = [("a:1", "cause one"), ("b:1", "b:1: cause one"), ("c:1", "cause two"), ("a:1", "cause one")]
    assert grouped_causes(failures) == "a:1, b:1: cause one; c:1: cause two"
    assert failed_items("pushes", failures[:3]) == "3 pushes failed: a:1, b:1: cause one; c:1: cause two"


def test_a_cause_one_item_met_is_said_in_its_own_message():
    assert failed_items("pushes", [("a:1", "cause")]) == "a:1: cause"
    assert failed_items("pushes", [("a:1", "push of a:1 refused:\n cause")]) == "push of a:1 refused: cause"
    failures = [("a:1", "down", "push of a:1 failed: down"), ("b:1", "down", "push of b:1 failed: down"),
                ("c:1", "denied", "push of c:1 refused: denied")]
    assert failed_items("pushes", failures) == "3 pushes failed: a:1, b:1: down; push of c:1 refused: denied"


# -- image_push / image_publish -----------------------------------------------------------------
class Engine:
    """Local images; pushes after ``die_after`` succeed no more (the registry was killed)."""

    local = False
    names_ipv6_registries = False

    def __init__(self, names, die_after=None):
        self.images = {name: {"Id": sha(str(i)), "RepoDigests": [], "RepoTags": [name]} for i, name in enumerate(names)}
        self.die_after = die_after
        self.pushed: list[str] = []
        self.tagged: list[str] = []

    def image_index(self):
        return dict(self.images)

    def image(self, ref):
        return self.images.get(ref)

    def tag(self, image_id, repository, tag):
        self.tagged.append("%s:%s" % (repository, tag))
        self.images["%s:%s" % (repository, tag)] = {"Id": image_id, "RepoDigests": [], "RepoTags": []}

    def push(self, repository, tag, auth_config=None):
        name = "%s:%s" % (repository, tag)
        if self.die_after is not None and len(self.pushed) >= self.die_after:
            reason = 'Get "http://%s/v2/": dial tcp 127.0.0.1:5100: connect: connection refused' % REG
            raise EngineError("push of %s failed: %s" % (name, reason), reason)
        self.pushed.append(name)
        return sha("d")


class Registry:
    base_url = "http://" + REG

    def __init__(self):
        self.down = False

    def manifest_digest(self, repository, tag):
        return None

    def holds_image(self, repository, digest, image_id):
        return False

    def ping(self):
        raise RegistryUnreachable(DOWN)


def test_push_registry_killed_mid_run_reports_what_happened():
    names = [REG + "/app%d:1" % i for i in range(6)]
    engine = Engine(names, die_after=2)
    registry = Registry()
    with pytest.raises(ItemsFailed) as caught:
        push_images(engine, names, lambda address: registry, workers=1)
    failure = caught.value
    assert str(failure) == "4 pushes failed: %s: %s" % (", ".join(names[2:]), DOWN)
    assert failure.result["changed"] is True  # two images went in
    assert failure.result["pushed"] == names[:2]
    items = failure.results
    assert [(r["pushed"], bool(r.get("failed")), r["changed"]) for r in items] == [(True, False, True)] * 2 + [(False, True, False)] * 4
    assert all(r["digest"] is None and DOWN in r["msg"] and "_cause" not in r for r in items[2:])


def test_push_nothing_changed_when_every_push_failed():
    names = [REG + "/app%d:1" % i for i in range(3)]
    with pytest.raises(ItemsFailed) as caught:
        push_images(Engine(names, die_after=0), names, lambda address: Registry(), workers=2)
    assert caught.value.result["changed"] is False and caught.value.result["pushed"] == []


def test_publish_changed_when_tags_were_made_though_every_push_failed():
    engine = Engine(["app:1"], die_after=0)
    with pytest.raises(ItemsFailed) as caught:
        publish_images(engine, [TagItem("app:1", [REG + "/app:1", REG + "/app:latest"])], lambda address: Registry())
    result = caught.value.result
    assert result["changed"] is True and result["tagged"] == [REG + "/app:1", REG + "/app:latest"]
    assert result["actions"] == ["tag app:1 as %s/app:1" % REG, "tag app:1 as %s/app:latest" % REG]
    assert [(r["tagged"], r["pushed"], r["failed"]) for r in result["results"]] == [(True, False, True)] * 2
    assert str(caught.value) == "2 pushes failed: %s/app:1, %s/app:latest: %s" % (REG, REG, DOWN)


def test_run_module_returns_changed_and_items_with_the_failure(capsys):
    def action():
        raise PartialFailure("1 of 2 pushes failed", {"changed": True, "pushed": ["a"], "results": [{"name": "a"}],
                                                      "warnings": ["careful"], "diff": {}})

    with patch_module_args({}), pytest.raises(SystemExit):
        module = AnsibleModule(argument_spec={})
        with mock.patch.object(module, "warn") as warn:
            run_module(module, action)
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert result["failed"] is True and result["changed"] is True and result["msg"] == "1 of 2 pushes failed"
    assert result["pushed"] == ["a"] and result["results"] == [{"name": "a"}] and "diff" not in result
    warn.assert_called_once_with("careful")


# -- image_sync ------------------------------------------------------------------------------
OCI = "application/vnd.oci.image.manifest.v1+json"


class Source:
    registry = "src:5000"

    def __init__(self, count):
        self.manifests = {}
        for i in range(count):
            data = json.dumps({"schemaVersion": 2, "mediaType": OCI, "config": {"digest": sha("c"), "size": 1}, "layers": [],
                               "n": i}).encode()
            self.manifests[str(i)] = Manifest(data, OCI, "sha256:" + hashlib.sha256(data).hexdigest())

    def ping(self):
        return 200

    def get_manifest(self, repository, reference):
        return self.manifests[reference]

    def open_blob(self, repository, digest, size):  # pragma: no cover - the destination has every blob
        raise AssertionError


class Destination:
    registry = "dest:5000"

    def __init__(self, die_after):
        self.die_after = die_after
        self.held = {}

    def ping(self):
        return 200

    def tags(self, repository):
        return list(self.held)

    def repository_tags(self, repository):  # the repository exists (it holds every blob)
        return list(self.held)

    def manifest_digest(self, repository, tag):
        return self.held.get(tag)

    def has_blob(self, repository, digest):
        return True

    def put_manifest(self, repository, reference, manifest):
        if len(self.held) >= self.die_after:
            raise RegistryUnreachable("registry dest:5000 is unreachable: Connection refused")
        self.held[reference] = manifest.digest
        return manifest.digest


def test_sync_destination_killed_mid_run_reports_what_happened():
    src, dest = Source(5), Destination(die_after=2)
    clients = {"src:5000": src, "dest:5000": dest}
    with pytest.raises(SyncError) as caught:
        sync_images(clients.__getitem__, clients.__getitem__, src_repository="src:5000/app", dest_repository="dest:5000/app",
                    tags=[str(i) for i in range(5)], workers=1)
    failure = caught.value
    assert str(failure) == (
        "image_sync failed for 3 of 5 tags: dest:5000/app:2, dest:5000/app:3, dest:5000/app:4:"
        " registry dest:5000 is unreachable: Connection refused"
    )
    assert failure.result["changed"] is True and failure.result["synced"] == ["dest:5000/app:0", "dest:5000/app:1"]
    done, failed = failure.results[:2], failure.results[2:]
    assert all(r["action"] == "copied" and r["digest_preserved"] and r["changed"] for r in done)
    assert all(r["action"] == "failed" and not r["digest_preserved"] and not r["changed"] and r["failed"] for r in failed)
    assert all(r["digest_before"] is None and r["digest"] == r["source_digest"] for r in failed)  # it was to get it
