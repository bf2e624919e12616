"""RegistryContainer.converge() against a fake engine that keeps containers in memory."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import container as container_mod
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.container import RegistryContainer
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import (
    DATA_TARGET,
    InvalidSpec,
    RegistrySpec,
    current_view,
    desired_view,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError

IMAGE_ID = "sha256:" + "1" * 64
OTHER_IMAGE_ID = "sha256:" + "2" * 64
IMAGE_ENV = ["PATH=/bin"]


class FakeEngine:
    # A remote engine as far as the container logic knows: no probing of host ports in unit tests.
    local = False

    def __init__(self) -> None:
        self.images = {"registry:2": {"Id": IMAGE_ID, "Config": {"Env": IMAGE_ENV}}}
        self.containers: dict[str, dict[str, Any]] = {}
        self.volumes: set[str] = set()
        self.calls: list[str] = []
        self.fail_start: set[str] = set()
        # True: every container created from now on fails to start (a new container that never comes up).
        self.fail_new_starts = False
        self._ids = itertools.count(1)

    # lookups by id or name
    def _find(self, ref: str) -> dict[str, Any] | None:
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c["Name"] == "/" + ref:
                return c
        return None

    def image(self, ref):
        return self.images.get(ref)

    def container(self, ref):
        found = self._find(ref)
        return None if found is None else {**found, "State": dict(found["State"])}

    def volume(self, name):
        return {"Name": name} if name in self.volumes else None

    def create_volume(self, name):
        self.calls.append("create_volume " + name)
        self.volumes.add(name)

    def create_container(self, name, image, env, port_bindings, mounts, restart_policy, labels=None,
                         read_only=False, cap_drop=None, cap_add=None, security_opt=None, tmpfs=None, command=None,
                         stop_timeout=None):
        cid = "%064d" % next(self._ids)
        self.calls.append("create " + name)
        if self.fail_new_starts:
            self.fail_start.add(cid)
        self.containers[cid] = {
            "Id": cid,
            "Name": "/" + name,
            "Image": self.images[image]["Id"] if image in self.images else image,
            "Config": {"Image": image, "Env": IMAGE_ENV + ["%s=%s" % kv for kv in env.items()], "Labels": dict(labels or {}),
                       "StopTimeout": stop_timeout},
            "HostConfig": {
                "PortBindings": {port: [{"HostIp": ip, "HostPort": str(host_port)}] for port, (ip, host_port) in port_bindings.items()},
                "RestartPolicy": dict(restart_policy),
                "ReadonlyRootfs": read_only,
                "CapDrop": cap_drop,
                "CapAdd": cap_add,
                "SecurityOpt": security_opt,
            },
            "Mounts": [
                {
                    "Type": m["type"],
                    "Source": m["source"] if m["type"] == "bind" else "/var/lib/docker/volumes/%s/_data" % m["source"],
                    "Name": m["source"] if m["type"] == "volume" else None,
                    "Destination": m["target"],
                    "RW": not m.get("read_only", False),
                }
                for m in mounts
            ],
            "State": {"Running": False},
        }
        return cid

    def start(self, ref):
        self.calls.append("start " + ref)
        if ref in self.fail_start:
            raise EngineError("cannot start container %s: port is already allocated" % ref)
        self._find(ref)["State"]["Running"] = True

    def stop(self, ref, timeout=10):
        self.calls.append("stop " + ref)
        self._find(ref)["State"]["Running"] = False

    def remove_container(self, ref):
        self.calls.append("remove " + ref)
        found = self._find(ref)
        if found:
            del self.containers[found["Id"]]

    def rename(self, ref, name):
        self.calls.append("rename %s %s" % (ref, name))
        self._find(ref)["Name"] = "/" + name

    def update_restart_policy(self, ref, policy):
        self.calls.append("update %s %s" % (ref, policy["Name"]))
        self._find(ref)["HostConfig"]["RestartPolicy"] = dict(policy)

    def logs(self, ref, tail=5):
        return "level=fatal msg=boom\n"


@pytest.fixture(autouse=True)
def no_http(monkeypatch):
    waited: list[str] = []

    def wait_ready(address, scheme, timeout, still=None):
        waited.append(address)

    monkeypatch.setattr(container_mod, "wait_ready", wait_ready)

    def in_engine(engine, container_id, port, timeout, still=None):
        # The fake engine is remote: route its readiness wait through whatever wait_ready a test sets.
        return container_mod.wait_ready("engine:%d" % port, "http", timeout, still)

    monkeypatch.setattr(container_mod, "wait_ready_in_engine", in_engine)
    return waited


def spec(tmp_path, **changes) -> RegistrySpec:
    values = dict(name="dh-it-reg", image="registry:2", port=5100, data_path=str(tmp_path / "data"))
    values.update(changes)
    return RegistrySpec(**values)


def converge(engine, the_spec, check_mode=False):
    return RegistryContainer(engine, the_spec, check_mode).converge()


# -- views -----------------------------------------------------------------------------
def test_desired_equals_current_after_create(tmp_path):
    engine = FakeEngine()
    s = spec(tmp_path, env={"REGISTRY_STORAGE_DELETE_ENABLED": "true", "PATH": "/bin"})
    converge(engine, s)
    image = engine.image("registry:2")
    want = desired_view(s, image)
    have = current_view(engine.container("dh-it-reg"), {"PATH": "/bin"})
    assert have == want
    assert want["ports"] == ["127.0.0.1:5100->5000/tcp"]
    assert want["mounts"] == ["bind:%s->%s" % (tmp_path / "data", DATA_TARGET)]
    # A variable equal to the image's own value is not a difference.
    assert want["env"] == {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}


def test_current_view_defaults():
    view = current_view(
        {
            "Config": {"Image": "registry:2", "Env": ["PATH=/bin", "A=1"]},
            "Image": IMAGE_ID,
            "HostConfig": {"PortBindings": {"5000/tcp": [{"HostIp": "", "HostPort": "5100"}]}, "RestartPolicy": {}},
            "Mounts": [{"Type": "volume", "Name": "data", "Destination": DATA_TARGET, "RW": False}],
            "State": {"Running": False},
        },
        {"PATH": "/bin"},
    )
    assert view["ports"] == ["0.0.0.0:5100->5000/tcp"]
    assert view["mounts"] == ["volume:data->%s (ro)" % DATA_TARGET]
    assert view["restart_policy"] == "no"
    assert view["env"] == {"A": "1"}
    assert view["state"] == "stopped"


# -- converge --------------------------------------------------------------------------
def test_create_then_unchanged(tmp_path, no_http):
    engine = FakeEngine()
    first = converge(engine, spec(tmp_path))
    assert first["changed"] is True
    assert first["actions"] == ["create data directory %s" % (tmp_path / "data"), "create container dh-it-reg"]
    assert (tmp_path / "data").is_dir()
    assert first["container"]["status"] == "running"
    again = converge(engine, spec(tmp_path))
    assert again["changed"] is False and again["actions"] == []
    # The fake engine is remote: readiness is asked of the engine, not probed on this host's 127.0.0.1.
    assert no_http == ["engine:5100", "engine:5100"]


def test_restart_policy_only_updates_in_place(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    cid = engine.container("dh-it-reg")["Id"]
    engine.calls.clear()
    result = converge(engine, spec(tmp_path, restart_policy="unless-stopped"))
    assert result["changed"] is True
    assert result["actions"] == ["update restart policy always -> unless-stopped (in place)"]
    assert engine.calls == ["update %s unless-stopped" % cid]
    assert engine.container("dh-it-reg")["Id"] == cid
    assert result["container"]["restart_policy"] == "unless-stopped"
    assert converge(engine, spec(tmp_path, restart_policy="unless-stopped"))["changed"] is False


def test_on_failure_retries_compared(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path, restart_policy="on-failure", restart_retries=3))
    assert converge(engine, spec(tmp_path, restart_policy="on-failure", restart_retries=3))["changed"] is False
    result = converge(engine, spec(tmp_path, restart_policy="on-failure", restart_retries=5))
    assert result["actions"] == ["update restart policy on-failure:3 -> on-failure:5 (in place)"]


@pytest.mark.parametrize(
    "change, what",
    [
        ({"port": 5101}, "ports"),
        ({"bind_address": "0.0.0.0"}, "ports"),
        ({"env": {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}}, "env"),
    ],
)
def test_other_changes_recreate(tmp_path, change, what):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    old_id = engine.container("dh-it-reg")["Id"]
    engine.calls.clear()
    result = converge(engine, spec(tmp_path, **change))
    assert result["changed"] is True
    assert result["actions"] == ["recreate container dh-it-reg (%s differ)" % what]
    new = engine.container("dh-it-reg")
    assert new["Id"] != old_id
    assert old_id not in engine.containers
    # The old container is stopped and kept aside until the new one runs, then removed.
    assert engine.calls[:2] == ["stop " + old_id, "rename %s dh-it-reg-dockhand-old" % old_id]
    assert engine.calls[-1] == "remove " + old_id
    assert converge(engine, spec(tmp_path, **change))["changed"] is False


def test_image_change_recreates(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    engine.images["registry:2"] = {"Id": OTHER_IMAGE_ID, "Config": {"Env": IMAGE_ENV}}
    result = converge(engine, spec(tmp_path))
    assert result["actions"] == ["recreate container dh-it-reg (image_id differ)"]
    assert result["container"]["image_id"] == OTHER_IMAGE_ID


def test_data_path_to_volume_recreates(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    result = converge(engine, spec(tmp_path, data_path=None, volume="dh-it-vol"))
    assert result["actions"] == ["create volume dh-it-vol", "recreate container dh-it-reg (mounts differ)"]
    assert engine.volumes == {"dh-it-vol"}


def test_anonymous_data_volume_refused(tmp_path):
    engine = FakeEngine()
    engine.containers["c1"] = {
        "Id": "c1",
        "Name": "/dh-it-reg",
        "Image": IMAGE_ID,
        "Config": {"Image": "registry:2", "Env": IMAGE_ENV},
        "HostConfig": {"PortBindings": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5100"}]}},
        "Mounts": [{"Type": "volume", "Name": "f" * 64, "Destination": DATA_TARGET, "RW": True}],
        "State": {"Running": True},
    }
    with pytest.raises(InvalidSpec) as err:
        converge(engine, spec(tmp_path))
    assert "anonymous volume " + "f" * 64 in str(err.value)
    assert "volume: " + "f" * 64 in str(err.value)
    assert engine.calls == []
    assert engine.container("dh-it-reg")["State"]["Running"] is True


def test_rollback_when_new_container_fails(tmp_path, monkeypatch):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    old_id = engine.container("dh-it-reg")["Id"]
    engine.fail_new_starts = True
    with pytest.raises(DockhandError) as err:
        converge(engine, spec(tmp_path, port=5101))
    assert "port is already allocated" in str(err.value)
    assert "previous container dh-it-reg was kept" in str(err.value)
    restored = engine.container("dh-it-reg")
    assert restored["Id"] == old_id
    assert restored["State"]["Running"] is True
    assert list(engine.containers) == [old_id]


def test_rollback_when_new_container_never_answers(tmp_path, monkeypatch):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    old_id = engine.container("dh-it-reg")["Id"]

    def never(address, scheme, timeout, still=None):
        raise DockhandError("registry at %s did not answer /v2/ within 1s" % address)

    monkeypatch.setattr(container_mod, "wait_ready", never)
    with pytest.raises(DockhandError, match=r"did not answer.*registry log: level=fatal msg=boom.*was kept"):
        converge(engine, spec(tmp_path, port=5101))
    assert list(engine.containers) == [old_id]
    assert engine.container("dh-it-reg")["HostConfig"]["PortBindings"]["5000/tcp"][0]["HostPort"] == "5100"


def test_failed_first_start_leaves_nothing(tmp_path, monkeypatch):
    engine = FakeEngine()
    engine.fail_new_starts = True
    with pytest.raises(DockhandError):
        converge(engine, spec(tmp_path))
    assert engine.containers == {}


def test_stopped_started_absent(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    cid = engine.container("dh-it-reg")["Id"]
    stopped = converge(engine, spec(tmp_path, state="stopped"))
    assert stopped["actions"] == ["stop container dh-it-reg"]
    assert engine.container("dh-it-reg")["State"]["Running"] is False
    assert converge(engine, spec(tmp_path, state="stopped"))["changed"] is False
    started = converge(engine, spec(tmp_path))
    assert started["actions"] == ["start container dh-it-reg"]
    assert engine.container("dh-it-reg")["Id"] == cid
    absent = converge(engine, spec(tmp_path, state="absent"))
    assert absent["actions"] == ["remove container dh-it-reg (data kept)"]
    assert engine.containers == {}
    assert (tmp_path / "data").is_dir()
    assert converge(engine, spec(tmp_path, state="absent"))["changed"] is False


def test_check_mode_touches_nothing_and_says_what(tmp_path):
    engine = FakeEngine()
    result = converge(engine, spec(tmp_path), check_mode=True)
    assert result["changed"] is True
    assert "create container dh-it-reg" in result["actions"]
    assert engine.calls == [] and engine.containers == {}
    assert not (tmp_path / "data").exists()
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["ports"] == ["127.0.0.1:5100->5000/tcp"]

    converge(engine, spec(tmp_path))
    engine.calls.clear()
    result = converge(engine, spec(tmp_path, port=5101, restart_policy="no"), check_mode=True)
    assert result["actions"] == ["recreate container dh-it-reg (ports differ)"]
    assert result["diff"]["before"]["ports"] == ["127.0.0.1:5100->5000/tcp"]
    assert result["diff"]["after"]["ports"] == ["127.0.0.1:5101->5000/tcp"]
    assert engine.calls == []


def test_check_mode_with_missing_image(tmp_path):
    engine = FakeEngine()
    result = converge(engine, spec(tmp_path, image="dh-it-notyet:1"), check_mode=True)
    assert result["changed"] is True
    with pytest.raises(InvalidSpec, match="registry image dh-it-notyet:1 is not in the engine"):
        converge(engine, spec(tmp_path, image="dh-it-notyet:1"))


def test_secrets_masked(tmp_path):
    engine = FakeEngine()
    result = converge(engine, spec(tmp_path, env={"REGISTRY_HTTP_SECRET": "s3cret", "X": "1"}))
    assert result["container"]["env"] == {"REGISTRY_HTTP_SECRET": "********", "X": "1"}
    assert "s3cret" not in repr(result)


def test_leftover_from_interrupted_swap_is_restored(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    cid = engine.container("dh-it-reg")["Id"]
    engine.rename(cid, "dh-it-reg-dockhand-old")
    result = converge(engine, spec(tmp_path))
    assert result["actions"][0] == "restore leftover container dh-it-reg-dockhand-old as dh-it-reg"
    assert engine.container("dh-it-reg")["Id"] == cid


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "bad name"}, "invalid container name 'bad name'"),
        ({"image": None}, "image is required"),
        ({"port": 0}, "port 0 is out of range"),
        ({"port": 70000}, "port 70000 is out of range"),
        ({"bind_address": "localhost"}, "bind_address 'localhost' is not an IP address"),
        ({"restart_policy": "sometimes"}, "unknown restart policy 'sometimes'"),
        ({"data_path": None}, "give exactly one of data_path"),
        ({"volume": "v"}, "give exactly one of data_path"),
        ({"data_path": "relative/dir"}, "data_path 'relative/dir' must be an absolute path"),
        ({"data_path": None, "volume": "bad/vol"}, "invalid volume name 'bad/vol'"),
        ({"env": {"A=B": "1"}}, "invalid environment variable name 'A=B'"),
        ({"mounts": [{"source": "/x", "target": "rel"}]}, "mount target 'rel' must be an absolute path"),
        ({"mounts": [{"source": "/x", "target": DATA_TARGET}]}, "is the data mount"),
    ],
)
def test_validate_names_the_bad_value(tmp_path, change, message):
    engine = FakeEngine()
    with pytest.raises(InvalidSpec) as err:
        converge(engine, spec(tmp_path, **change))
    assert message in str(err.value)
    assert engine.calls == []


def test_data_path_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidSpec, match="exists and is not a directory"):
        spec(tmp_path, data_path=str(tmp_path / "file")).validate()
