"""ServiceBackend against a scripted swarm: one update makes every replica read-only, the GC waits for it."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import gc
from ansible_collections.dockhand.registry.plugins.module_utils.gc import LABEL_PARALLELISM, READONLY_ENV, GcError, ServiceBackend, run_gc

RO = '%s={"enabled": true}' % READONLY_ENV
DRY = "1 blobs marked, 1 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: sha256:" + "a" * 64 + "\n"
NOTHING = "0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n"


def service_spec(env=None, labels=None, parallelism=1):
    return {
        "Name": "reg",
        "Labels": dict(labels or {"io.dockhand.registry.service": "reg"}),
        "TaskTemplate": {
            "ContainerSpec": {"Image": "registry:2", "Args": ["serve", "/run/secrets/dockhand-registry.yml"], "Env": list(env or ["A=1"])},
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "UpdateConfig": {"Parallelism": parallelism, "Order": "stop-first", "FailureAction": "rollback"},
        "EndpointSpec": {"Ports": [{"TargetPort": 5000, "PublishedPort": 5000, "PublishMode": "host"}]},
    }


class FakeSwarm:
    """A manager (node n1) of a swarm whose service ``reg`` has three tasks (n1, n2, n3).

    An update that changes the task template replaces the tasks; ``lag`` polls of tasks() still show the old ones
    running (``stuck`` = forever, on node n3)."""

    local = False

    def __init__(self, spec=None, lag=1, stuck=False, manager=True, outputs=None, rollback=False):
        self.spec = spec or service_spec()
        self.version = 10
        self.updates = []
        self.lag = 0
        self.lag_after_update = lag
        self.stuck = stuck
        self.manager = manager
        self.rollback = rollback
        self.outputs = list(outputs or [])
        self.execs = []
        self.generation = 0
        self.old_spec = copy.deepcopy(self.spec["TaskTemplate"])

    def swarm_state(self):
        return {"LocalNodeState": "active", "NodeID": "n1", "ControlAvailable": self.manager}

    def service(self, name):
        if name != "reg":
            return None
        status = {"State": "rollback_started", "StartedAt": "later", "Message": "task failed"} if self.rollback and self.updates else {}
        return {"ID": "sid", "Version": {"Index": self.version}, "Spec": copy.deepcopy(self.spec), "UpdateStatus": status}

    def update_service(self, service_id, version, spec):
        assert service_id == "sid" and version == self.version
        if spec["TaskTemplate"] != self.spec["TaskTemplate"]:
            self.old_spec = copy.deepcopy(self.spec["TaskTemplate"])
            self.generation += 1
            self.lag = self.lag_after_update
        self.spec = copy.deepcopy(spec)
        self.version += 1
        self.updates.append(copy.deepcopy(spec))

    def tasks(self, name):
        old = self.lag > 0
        self.lag -= 1
        tasks = []
        for slot, node in enumerate(["n1", "n2", "n3"]):
            stale = old or (self.stuck and node == "n3")
            template = self.old_spec if stale else self.spec["TaskTemplate"]
            tasks.append({
                "ID": "t%d-%d" % (self.generation, slot), "NodeID": node, "DesiredState": "shutdown" if stale and not self.stuck else "running",
                "Spec": copy.deepcopy(template),
                "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c-%s-%d" % (node, self.generation)}},
            })  # fmt: skip
        return tasks

    def container(self, name):
        return {"Config": {"Entrypoint": ["registry"], "Cmd": ["serve", "/run/secrets/dockhand-registry.yml"]}, "Mounts": []}

    def exec_run(self, container, command):
        self.execs.append((container, command))
        return self.outputs.pop(0) if self.outputs else (0, NOTHING)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(gc.time, "sleep", lambda seconds: None)


def test_one_update_makes_every_replica_read_only_and_waits_for_it():
    swarm = FakeSwarm(lag=3)
    backend = ServiceBackend(swarm, "reg", wait_timeout=5)
    assert not backend.is_read_only()
    backend.set_read_only(True)
    assert len(swarm.updates) == 1
    update = swarm.updates[0]
    assert sorted(update["TaskTemplate"]["ContainerSpec"]["Env"]) == ["A=1", RO]
    assert update["UpdateConfig"]["Parallelism"] == 0 and update["UpdateConfig"]["Order"] == "stop-first"
    assert update["Labels"][LABEL_PARALLELISM] == "1"
    assert swarm.lag < 0  # the wait polled past the old tasks
    assert backend.is_read_only()


def test_back_to_read_write_restores_the_service_spec_exactly():
    original = service_spec(parallelism=2)
    swarm = FakeSwarm(spec=copy.deepcopy(original))
    backend = ServiceBackend(swarm, "reg", wait_timeout=5)
    backend.set_read_only(True)
    backend.set_read_only(False)
    assert swarm.spec == original
    # the way back: all tasks at once, then the service's own parallelism (an UpdateConfig change replaces no task)
    assert swarm.updates[1]["UpdateConfig"]["Parallelism"] == 0 and swarm.updates[2]["UpdateConfig"]["Parallelism"] == 2
    assert swarm.updates[2]["TaskTemplate"] == original["TaskTemplate"]
    assert not backend.is_read_only()


def test_no_convergence_is_one_line_naming_the_service():
    swarm = FakeSwarm(stuck=True)
    backend = ServiceBackend(swarm, "reg", wait_timeout=1)
    with pytest.raises(GcError) as failed:
        backend.set_read_only(True)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("service reg: 2 of 3 tasks run the read-only spec after 1s")


def test_a_rolled_back_update_fails_at_once():
    swarm = FakeSwarm(rollback=True, lag=100)
    with pytest.raises(GcError, match=r"service reg: the update to read-only stopped .rollback_started.: task failed"):
        ServiceBackend(swarm, "reg", wait_timeout=60).set_read_only(True)


def test_not_a_manager_or_no_service():
    with pytest.raises(GcError, match=r"not a swarm manager .* service reg"):
        ServiceBackend(FakeSwarm(manager=False), "reg").is_read_only()
    with pytest.raises(GcError, match="there is no service other in the swarm"):
        ServiceBackend(FakeSwarm(), "other").is_read_only()


def test_gc_runs_in_this_nodes_task_with_its_config():
    swarm = FakeSwarm(outputs=[(0, NOTHING)])
    code, _output = ServiceBackend(swarm, "reg").garbage_collect(True, True)
    assert code == 0
    assert swarm.execs == [("c-n1-0", ["registry", "garbage-collect", "--dry-run", "--delete-untagged", "/run/secrets/dockhand-registry.yml"])]


def test_no_task_on_this_node_is_one_line():
    swarm = FakeSwarm()
    swarm.swarm_state = lambda: {"LocalNodeState": "active", "NodeID": "n9", "ControlAvailable": True}
    with pytest.raises(GcError, match=r"service reg has no running task on this node .n9.: run registry_gc on a manager"):
        ServiceBackend(swarm, "reg").garbage_collect(True, False)


def test_run_gc_on_a_service_collects_in_the_read_only_task_and_ends_read_write():
    swarm = FakeSwarm(outputs=[(0, DRY), (0, DRY)])
    result = run_gc(ServiceBackend(swarm, "reg", wait_timeout=5), delete_untagged=True)
    assert result["changed"] and result["removed"] == ["sha256:" + "a" * 64]
    assert result["actions"][0] == "switch the registry service reg to read-only"
    # the dry run in the task before the window, the collection in the read-only task that replaced it
    assert [c for c, _cmd in swarm.execs] == ["c-n1-0", "c-n1-1"]
    assert swarm.spec == service_spec() and len(swarm.updates) == 3


def test_check_mode_switches_nothing():
    swarm = FakeSwarm(outputs=[(0, DRY)])
    result = run_gc(ServiceBackend(swarm, "reg"), check_mode=True)
    assert result["changed"] and result["blobs_removed"] == 1 and swarm.updates == []


@pytest.mark.parametrize(
    "spec",
    [service_spec(env=["A=1", RO], labels={"io.dockhand.registry.service": "reg", LABEL_PARALLELISM: "1"}, parallelism=0),
     service_spec(labels={"io.dockhand.registry.service": "reg", LABEL_PARALLELISM: "1"}, parallelism=0)],
    ids=["killed-in-the-window", "killed-before-the-parallelism-came-back"],
)  # fmt: skip
def test_a_service_left_by_a_killed_run_is_repaired(spec):
    swarm = FakeSwarm(spec=spec, outputs=[(0, NOTHING)])
    result = run_gc(ServiceBackend(swarm, "reg", wait_timeout=5))
    assert "left read-only by an interrupted run" in result["actions"][0] and result["changed"]
    assert swarm.spec == service_spec()


def test_module_name_and_service_exclusive_and_empty_service_refused(capsys):
    from ansible_collections.dockhand.registry.plugins.modules import registry_gc
    from ansible_collections.dockhand.registry.tests.support.unit import module_fails

    module_fails(registry_gc, "EngineClient", {"name": "reg", "service": "reg"}, capsys, "mutually exclusive", "name|service")
    module_fails(registry_gc, "EngineClient", {"service": " "}, capsys, "service ' ' is not a service name")
