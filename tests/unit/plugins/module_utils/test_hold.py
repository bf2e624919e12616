"""The connection hold of a swap (hold.py) and its use by RegistryContainer, with a fake iptables."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import container as container_mod
from ansible_collections.dockhand.registry.plugins.module_utils.container import RegistryContainer
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import DRAIN_ENV, InvalidSpec, RegistrySpec, drain_seconds
from ansible_collections.dockhand.registry.plugins.module_utils.hold import ConnectionHold
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_container import FakeEngine

NOW = datetime.datetime(2026, 11, 30, 5, 0, 0, tzinfo=datetime.timezone.utc)


class FakeIptables:
    """Records every call; keeps the rules per (binary, chain) like iptables -S prints them."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.calls: list[list[str]] = []
        self.rules: dict[tuple[str, str], list[list[str]]] = {}
        self.fail = fail  # substrings: a call whose text contains one fails

    def __call__(self, argv):
        argv = list(argv)
        self.calls.append(argv)
        text = " ".join(argv)
        if any(f in text for f in self.fail):
            return 1, "iptables: No chain/target/match by that name."
        binary, _w, _t, _raw, op, chain, *rule = argv
        rules = self.rules.setdefault((binary, chain), [])
        if op == "-I":
            rules.insert(0, rule)
        elif op == "-D":
            if rule not in rules:
                return 1, "iptables: Bad rule (does a matching rule exist in that chain?)."
            rules.remove(rule)
        elif op == "-S":
            lines = ["-P %s ACCEPT" % chain]
            for r in rules:
                words = ['"%s"' % w if " " in w else w for w in r]
                lines.append("-A %s %s" % (chain, " ".join(words)))
            return 0, "\n".join(lines) + "\n"
        return 0, ""

    def all_rules(self):
        return [r for rules in self.rules.values() for r in rules]


def hold(fake, address="127.0.0.1", which=lambda tool: "/usr/sbin/" + tool, root=True, seconds=90):
    return ConnectionHold(5100, address, "dh-it-reg", seconds, runner=fake, which=which, is_root=lambda: root,
                          now=lambda: NOW)


def test_hold_drops_new_connections_to_the_port_until_released():
    fake = FakeIptables()
    with hold(fake) as h:
        assert h.active and h.problem is None
        inserted = [c for c in fake.calls if "-I" in c]
        assert [c[5] for c in inserted] == ["PREROUTING", "OUTPUT"]
        rule = inserted[0][6:]
        # Only the first packet of a new connection, to this port on this host's address, and only until a deadline.
        for words in (["-p", "tcp", "--syn", "--dport", "5100"], ["--dst-type", "LOCAL"], ["-d", "127.0.0.1"],
                      ["--datestop", "2026-11-30T05:01:30"], ["--comment", "dockhand-hold dh-it-reg 5100"],
                      ["-j", "DROP"]):
            at = rule.index(words[0])
            assert rule[at:at + len(words)] == words
        assert len(fake.all_rules()) == 2
    assert fake.all_rules() == []
    assert not h.active


def test_release_is_idempotent():
    fake = FakeIptables()
    with hold(fake) as h:
        h.release()
        h.release()
        assert fake.all_rules() == []
    assert [c[4] for c in fake.calls].count("-D") == 2


def test_wildcard_binding_holds_both_families_ipv6_best_effort():
    fake = FakeIptables()
    with hold(fake, address="0.0.0.0") as h:
        binaries = sorted({c[0] for c in fake.calls if "-I" in c})
        assert binaries == ["/usr/sbin/ip6tables", "/usr/sbin/iptables"]
        assert all("-d" not in r for r in fake.all_rules())
    assert fake.all_rules() == []
    # Without ip6tables the IPv4 hold still stands.
    fake = FakeIptables()
    with hold(fake, address="0.0.0.0", which=lambda tool: None if tool == "ip6tables" else "/sbin/" + tool) as h:
        assert h.active and h.problem is None
        assert len(fake.all_rules()) == 2


def test_ipv6_address_uses_ip6tables():
    fake = FakeIptables()
    with hold(fake, address="::1"):
        assert {c[0] for c in fake.calls if "-I" in c} == {"/usr/sbin/ip6tables"}


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"root": False}, "not root"),
        ({"which": lambda tool: None}, "iptables is not installed"),
        ({"address": "localhost"}, "bind address localhost is not an IP address"),
    ],
)
def test_no_hold_says_why_and_changes_nothing(kwargs, problem):
    fake = FakeIptables()
    with hold(fake, **kwargs) as h:
        assert not h.active
        assert h.problem == problem
    assert not any("-I" in c for c in fake.calls)


def test_a_failing_chain_leaves_no_rule_behind():
    fake = FakeIptables(fail=("-I OUTPUT",))
    with hold(fake) as h:
        assert not h.active
        assert h.problem.startswith("iptables: iptables: No chain")
    assert fake.all_rules() == []


def test_kernel_without_time_match_holds_without_deadline():
    fake = FakeIptables(fail=("--datestop",))
    with hold(fake) as h:
        assert h.active and h.problem is None
        assert len(fake.all_rules()) == 2
        assert all("--datestop" not in r for r in fake.all_rules())
    assert fake.all_rules() == []


def test_leftovers_of_a_killed_run_are_listed_then_cleared():
    fake = FakeIptables()
    killed = hold(fake)
    killed.__enter__()  # never left: the run was killed
    other = ConnectionHold(5101, "127.0.0.1", "other", 90, runner=fake, which=lambda t: "/sbin/" + t,
                           is_root=lambda: True, now=lambda: NOW)
    other.__enter__()
    assert len(fake.all_rules()) == 4
    listed = hold(fake).clear_leftovers(dry_run=True)
    assert listed == ["iptables raw PREROUTING", "iptables raw OUTPUT"]
    assert len(fake.all_rules()) == 4
    assert hold(fake).clear_leftovers() == listed
    # Only this registry's rules went; the other registry's hold is not touched.
    assert len(fake.all_rules()) == 2
    assert all("dockhand-hold other 5101" in r for r in fake.all_rules())
    # Without root: nothing listed, nothing run.
    calls = len(fake.calls)
    assert hold(fake, root=False).clear_leftovers() == []
    assert len(fake.calls) == calls


@pytest.mark.parametrize(
    "value, seconds",
    [("", 0), ("0", 0), ("10s", 10), ("1m", 60), ("1m30s", 90), ("2h", 7200), ("500ms", 1), ("1m500ms", 61),
     ("ten", -1), ("10", -1), ("s", -1), ("-5s", -1)],
)
def test_drain_seconds(value, seconds):
    assert drain_seconds(value) == seconds


def test_drain_timeout_sets_the_env_unless_given_and_is_validated(tmp_path):
    spec = RegistrySpec(name="r", image="registry:2", data_path=str(tmp_path), drain_timeout=10)
    assert spec.all_env[DRAIN_ENV] == "10s"
    spec = RegistrySpec(name="r", image="registry:2", data_path=str(tmp_path), drain_timeout=10,
                        env={DRAIN_ENV: "1m"})
    assert spec.all_env[DRAIN_ENV] == "1m"
    assert DRAIN_ENV not in RegistrySpec(name="r", image="registry:2", data_path=str(tmp_path)).all_env
    for bad, message in ((-1, "drain_timeout -1 must be 0-600 seconds"), (601, "drain_timeout 601 must be 0-600")):
        with pytest.raises(InvalidSpec, match=message):
            RegistrySpec(name="r", image="registry:2", data_path=str(tmp_path), drain_timeout=bad).validate()
    with pytest.raises(InvalidSpec, match="REGISTRY_HTTP_DRAINTIMEOUT 'soon' is not a duration"):
        RegistrySpec(name="r", image="registry:2", data_path=str(tmp_path), env={DRAIN_ENV: "soon"}).validate()


# -- RegistryContainer: the swap runs inside the hold -------------------------------------
class LocalEngine(FakeEngine):
    local = True

    def __init__(self, events):
        super().__init__()
        self.events = events
        self.stop_timeouts: list[int] = []

    def stop(self, ref, timeout=10):
        self.events.append("stop")
        self.stop_timeouts.append(timeout)
        super().stop(ref, timeout)

    def start(self, ref):
        self.events.append("start")
        super().start(ref)


class RecordingHold:
    problem: str | None = None

    def __init__(self, events, port, address, name, seconds):
        self.events = events
        self.what = "hold %s %d %s" % (address, port, name)
        self.active = False

    def __enter__(self):
        self.events.append(self.what)
        self.active = self.problem is None
        return self

    def release(self):
        if self.active:
            self.events.append("release")
        self.active = False

    def __exit__(self, *exc):
        self.release()
        self.events.append("exit")

    def clear_leftovers(self, dry_run=False):
        return []


@pytest.fixture
def swap(monkeypatch, tmp_path):
    events: list[str] = []
    monkeypatch.setattr(container_mod, "ConnectionHold", lambda *a: RecordingHold(events, *a))
    monkeypatch.setattr(container_mod, "port_problem", lambda address, port: None)
    monkeypatch.setattr(container_mod, "wait_ready", lambda address, scheme, timeout, still=None: events.append("http"))
    monkeypatch.setattr(container_mod, "wait_ready_in_engine",
                        lambda engine, cid, port, timeout, still=None: events.append("listening"))
    engine = LocalEngine(events)

    def spec(**changes):
        values = dict(name="dh-it-reg", image="registry:2", port=5100, data_path=str(tmp_path / "data"),
                      drain_timeout=10)
        values.update(changes)
        return RegistrySpec(**values)

    RegistryContainer(engine, spec()).converge()
    events.clear()
    return engine, spec, events


def test_swap_holds_new_connections_from_stop_until_the_new_registry_listens(swap):
    engine, spec, events = swap
    result = RegistryContainer(engine, spec(env={"REGISTRY_STORAGE_DELETE_ENABLED": "true"})).converge()
    assert result["changed"] and "warnings" not in result
    assert events == ["hold 127.0.0.1 5100 dh-it-reg", "stop", "start", "listening", "release", "http", "exit"]
    # The old registry was given its drain time and a margin.
    assert engine.stop_timeouts == [15]


def test_swap_without_a_hold_warns_and_goes_on(swap, monkeypatch):
    engine, spec, events = swap
    monkeypatch.setattr(RecordingHold, "problem", "not root")
    result = RegistryContainer(engine, spec(env={"REGISTRY_STORAGE_DELETE_ENABLED": "true"})).converge()
    assert result["changed"]
    assert result["warnings"] == [
        "new connections to port 5100 could not be held during the swap (not root): a client connecting in the"
        " fraction of a second between the two registries is refused"
    ]
    assert "release" not in events and "listening" not in events
    assert events[-2:] == ["http", "exit"]


def test_no_hold_when_nothing_changes_or_the_container_was_stopped(swap):
    engine, spec, events = swap
    assert RegistryContainer(engine, spec()).converge()["changed"] is False
    assert not any(e.startswith("hold") for e in events)
    RegistryContainer(engine, spec(state="stopped")).converge()
    events.clear()
    RegistryContainer(engine, spec(state="started", env={"X": "1"})).converge()
    assert not any(e.startswith("hold") for e in events)
