"""ServiceBackend against a scripted swarm: one rolling update (the service's own) of the env, the GC waits for every task."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import gc
from ansible_collections.dockhand.registry.plugins.module_utils.gc import READONLY_ENV, GcError, ServiceBackend, run_gc

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


RO_TEMPLATE = service_spec(env=["A=1", RO])["TaskTemplate"]


class FakeSwarm:
    """A manager (node n1) of a swarm whose service ``reg`` has three tasks (n1, n2, n3).

    An update that changes the task template is rolled out as the service's UpdateConfig says: ``Parallelism`` tasks
    (all with 0) are replaced every ``every`` polls of tasks(), n1 first; a task being replaced shows as the old one
    shutting down (stop-first). ``stuck``: n3's task is never replaced. Every poll is recorded (``seen``: read-only per
    node), and so is the state of the tasks at each ``docker exec``."""

    local = False

    def __init__(self, spec=None, every=1, stuck=False, manager=True, outputs=None, rollback=False, tasks=None):
        self.spec = spec or service_spec()
        self.version = 10
        self.updates = []
        self.every = every
        self.stuck = stuck
        self.manager = manager
        self.rollback = rollback
        self.outputs = list(outputs or [])
        self.execs = []
        self.polls = 0
        self.generation = 0
        # what each slot runs: its task template and the generation of its task
        self.slots = [[copy.deepcopy(t if t is not None else self.spec["TaskTemplate"]), 0] for t in (tasks or [None, None, None])]
        self.seen = []

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
            self.generation += 1
            self.polls = 0
        self.spec = copy.deepcopy(spec)
        self.version += 1
        self.updates.append(copy.deepcopy(spec))

    def _roll(self):
        """One poll of the rolling update: every ``every`` polls, the next Parallelism stale slots get the new spec."""
        self.polls += 1
        if self.polls % self.every:
            return
        parallelism = self.spec["UpdateConfig"].get("Parallelism", 1) or len(self.slots)
        stale = [slot for slot, node in zip(self.slots, ["n1", "n2", "n3"]) if slot[0] != self.spec["TaskTemplate"] and not (self.stuck and node == "n3")]
        for slot in stale[:parallelism]:
            slot[:] = [copy.deepcopy(self.spec["TaskTemplate"]), self.generation]

    def tasks(self, name):
        tasks = []
        for index, (node, (template, generation)) in enumerate(zip(["n1", "n2", "n3"], self.slots)):
            replacing = template != self.spec["TaskTemplate"] and index == next(
                (i for i, s in enumerate(self.slots) if s[0] != self.spec["TaskTemplate"]), None) and not self.stuck  # fmt: skip
            tasks.append({
                "ID": "t%d-%d" % (generation, index), "NodeID": node, "DesiredState": "shutdown" if replacing else "running",
                "Spec": copy.deepcopy(template),
                "Status": {"State": "running", "ContainerStatus": {"ContainerID": "c-%s-%d" % (node, generation)}},
            })  # fmt: skip
        self.seen.append({t["NodeID"]: READONLY_ENV in str(t["Spec"]) for t in tasks})
        self._roll()
        return tasks

    def read_only_nodes(self):
        return sorted(node for node, (template, _g) in zip(["n1", "n2", "n3"], self.slots) if READONLY_ENV in str(template))

    def container(self, name):
        return {"Config": {"Entrypoint": ["registry"], "Cmd": ["serve", "/run/secrets/dockhand-registry.yml"]}, "Mounts": []}

    def exec_run(self, container, command):
        self.execs.append((container, command, self.read_only_nodes()))
        return self.outputs.pop(0) if self.outputs else (0, NOTHING)


class Clock:
    """time.monotonic and time.sleep of gc: sleeping advances the clock."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(gc.time, "sleep", fake.sleep)
    monkeypatch.setattr(gc.time, "monotonic", fake.monotonic)
    return fake


def without_env(spec):
    spec = copy.deepcopy(spec)
    spec["TaskTemplate"]["ContainerSpec"].pop("Env", None)
    return spec


def test_one_update_of_the_env_rolled_out_by_the_services_own_update_config():
    original = service_spec()
    swarm = FakeSwarm(spec=copy.deepcopy(original), every=2)
    backend = ServiceBackend(swarm, "reg", wait_timeout=5)
    assert not backend.is_read_only()
    backend.set_read_only(True)
    assert len(swarm.updates) == 1
    update = swarm.updates[0]
    assert sorted(update["TaskTemplate"]["ContainerSpec"]["Env"]) == ["A=1", RO]
    # nothing else changes: the UpdateConfig (parallelism 1, stop-first), the labels, the rest of the spec
    assert without_env(update) == without_env(original) and update["UpdateConfig"] == original["UpdateConfig"]
    # the rollout went one task at a time, and the wait lasted until the last one ran the read-only spec
    assert {"n1": True, "n2": False, "n3": False} in swarm.seen and {"n1": True, "n2": True, "n3": False} in swarm.seen
    assert swarm.read_only_nodes() == ["n1", "n2", "n3"] and swarm.seen[-1] == {"n1": True, "n2": True, "n3": True}
    assert backend.is_read_only()


def test_back_to_read_write_is_one_more_rolling_update_and_restores_the_spec_exactly():
    original = service_spec(parallelism=2)
    swarm = FakeSwarm(spec=copy.deepcopy(original))
    backend = ServiceBackend(swarm, "reg", wait_timeout=5)
    backend.set_read_only(True)
    backend.set_read_only(False)
    assert len(swarm.updates) == 2 and swarm.spec == original
    assert all(u["UpdateConfig"] == original["UpdateConfig"] and u["Labels"] == original["Labels"] for u in swarm.updates)
    assert swarm.read_only_nodes() == [] and not backend.is_read_only()


def test_the_collection_starts_only_when_every_task_is_read_only():
    swarm = FakeSwarm(outputs=[(0, DRY), (0, DRY)], every=3)
    result = run_gc(ServiceBackend(swarm, "reg", wait_timeout=5))
    assert result["changed"] and result["removed"] == ["sha256:" + "a" * 64]
    assert result["actions"][0] == "switch the registry service reg to read-only"
    # mixed read-only/read-write replicas were seen during the rollout, but the collection (the second exec, in the
    # read-only task that replaced n1's) ran with all three read-only; the dry run before, with none
    assert any(sum(seen.values()) == 1 for seen in swarm.seen)
    assert [(c, ro) for c, _cmd, ro in swarm.execs] == [("c-n1-0", []), ("c-n1-1", ["n1", "n2", "n3"])]
    assert swarm.spec == service_spec() and len(swarm.updates) == 2 and swarm.read_only_nodes() == []


def test_the_wait_is_sized_for_a_rolling_update_of_every_task(clock):
    # 3 tasks, one at a time, 2 s Delay: 3 steps of (wait_timeout + Delay). A slow rollout (a task every 20 polls of
    # 0.5 s = 10 s, more than wait_timeout for the whole service) still converges.
    spec = service_spec()
    spec["UpdateConfig"]["Delay"] = 2 * 10**9
    swarm = FakeSwarm(spec=spec, every=20)
    started = clock.now
    ServiceBackend(swarm, "reg", wait_timeout=12).set_read_only(True)
    assert 25 <= clock.now - started <= 3 * 14 and swarm.read_only_nodes() == ["n1", "n2", "n3"]


def test_no_convergence_is_one_line_naming_the_service(clock):
    swarm = FakeSwarm(stuck=True)
    backend = ServiceBackend(swarm, "reg", wait_timeout=1)
    with pytest.raises(GcError) as failed:
        backend.set_read_only(True)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("service reg: 2 of 3 tasks run the read-only spec after 3s of its rolling update (wait_timeout 1s per step; 1 old")
    assert 3 <= clock.now - 1000 <= 4


def test_a_global_service_counts_its_nodes():
    spec = service_spec()
    spec["Mode"] = {"Global": {}}
    assert ServiceBackend(FakeSwarm(spec=spec), "reg", wait_timeout=10)._budget(spec) == 30
    spec["UpdateConfig"]["Parallelism"] = 0  # every task at once: one step
    assert ServiceBackend(FakeSwarm(spec=spec), "reg", wait_timeout=10)._budget(spec) == 10
    spec["UpdateConfig"] = {}  # the swarm's defaults: one task at a time, no delay
    assert ServiceBackend(FakeSwarm(spec=spec), "reg", wait_timeout=10)._budget(spec) == 30


def test_a_rolled_back_update_fails_at_once():
    swarm = FakeSwarm(rollback=True, every=100)
    with pytest.raises(GcError, match=r"service reg: the update to read-only stopped .rollback_started.: task failed"):
        ServiceBackend(swarm, "reg", wait_timeout=60).set_read_only(True)


def test_not_a_manager_or_no_service():
    with pytest.raises(GcError, match=r"not a swarm manager .* service reg"):
        ServiceBackend(FakeSwarm(manager=False), "reg").is_read_only()
    with pytest.raises(GcError, match="there is no service other in the swarm"):
        ServiceBackend(FakeSwarm(), "other").is_read_only()


def test_gc_runs_in_this_nodes_task_with_its_config():
    swarm = FakeSwarm(outputs=[(0, NOTHING)])
    code, _output = ServiceBackend(swarm, "reg").garbage_collect(True)
    assert code == 0
    # never --delete-untagged: distribution 2.8 would drop the platform images of every index
    assert swarm.execs == [("c-n1-0", ["registry", "garbage-collect", "--dry-run", "/run/secrets/dockhand-registry.yml"], [])]


def test_delete_untagged_needs_the_storage_on_this_host():
    swarm = FakeSwarm(outputs=[(0, DRY)])  # a remote engine: the storage is not readable here
    with pytest.raises(GcError) as failed:
        run_gc(ServiceBackend(swarm, "reg"), delete_untagged=True)
    assert "\n" not in str(failed.value) and "registry service reg cannot be read here: its engine is not this host's" in str(failed.value)
    assert swarm.updates == [] and swarm.execs == []


def test_no_task_on_this_node_is_one_line():
    swarm = FakeSwarm()
    swarm.swarm_state = lambda: {"LocalNodeState": "active", "NodeID": "n9", "ControlAvailable": True}
    with pytest.raises(GcError, match=r"service reg has no running task on this node .n9.: run registry_gc on a manager"):
        ServiceBackend(swarm, "reg").garbage_collect(True)


def test_check_mode_switches_nothing():
    swarm = FakeSwarm(outputs=[(0, DRY)])
    result = run_gc(ServiceBackend(swarm, "reg"), check_mode=True)
    assert result["changed"] and result["blobs_removed"] == 1 and swarm.updates == []


@pytest.mark.parametrize(
    "tasks",
    [[RO_TEMPLATE] * 3, [RO_TEMPLATE, None, None]],
    ids=["killed-in-the-window", "killed-while-the-rollout-to-read-only-ran"],
)
def test_a_service_left_read_only_by_a_killed_run_is_repaired(tasks):
    spec = service_spec(env=["A=1", RO])
    swarm = FakeSwarm(spec=spec, outputs=[(0, NOTHING)], tasks=[t if t is not None else service_spec()["TaskTemplate"] for t in tasks])
    result = run_gc(ServiceBackend(swarm, "reg", wait_timeout=5))
    assert "left read-only by an interrupted run" in result["actions"][0] and result["changed"]
    # one rolling update back (the env only); nothing to collect, so no read-only window after it
    assert swarm.spec == service_spec() and len(swarm.updates) == 1 and swarm.read_only_nodes() == []
    assert swarm.execs[0][2] == []


def test_module_name_and_service_exclusive_and_empty_service_refused(capsys):
    from ansible_collections.dockhand.registry.plugins.modules import registry_gc
    from ansible_collections.dockhand.registry.tests.support.unit import module_fails

    module_fails(registry_gc, "EngineClient", {"name": "reg", "service": "reg"}, capsys, "mutually exclusive", "name|service")
    module_fails(registry_gc, "EngineClient", {"service": " "}, capsys, "service ' ' is not a service name")
