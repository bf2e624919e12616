"""registry_container's safety with a fake engine (no Docker): what a run killed mid-recreate leaves is adopted or
restored, two runs at once take turns (host lock), secrets in its environment are masked, the hardening is applied
and compared, the configuration digest is computed from the mounted files, readiness with a remote engine is asked
of the engine, and two TLS generations at once make one CA."""

from __future__ import annotations

import datetime
import multiprocessing
import time

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import container as container_mod
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, host_lock
from ansible_collections.dockhand.registry.plugins.module_utils.container import RegistryContainer, wait_ready_in_engine
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import CONFIG_LABEL, config_digest, current_view
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineError
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_container import (
    FakeEngine,
    converge,
    no_http,
    spec,
)

# test_container's fixture: no HTTP probes, no readiness wait from unit tests.
pytestmark = pytest.mark.usefixtures(no_http.__name__)


def _interrupted_recreate(engine, tmp_path, **new_spec):
    """Leave what a run killed mid-swap leaves: the good old container renamed, a new one created (maybe broken)."""
    converge(engine, spec(tmp_path))
    good = engine.container("dh-it-reg")
    engine.stop(good["Id"])
    engine.rename(good["Id"], "dh-it-reg-dockhand-old")
    runner = RegistryContainer(engine, spec(tmp_path, **new_spec))
    digest = runner._wanted_digest()
    new_id = runner._create("dh-it-reg", "registry:2", digest)
    return good["Id"], new_id


# -- the leftover is kept unless the current container answers and matches -------------------
def test_crash_leftover_kept_when_current_does_not_answer(tmp_path):
    engine = FakeEngine()
    good_id, broken_id = _interrupted_recreate(engine, tmp_path)  # the new one was never started
    result = converge(engine, spec(tmp_path))
    assert result["actions"][0].startswith("remove container dh-it-reg left by an interrupted recreate (it does not answer")
    assert engine.container("dh-it-reg")["Id"] == good_id
    assert engine.container(broken_id) is None
    assert engine.container("dh-it-reg")["State"]["Running"] is True


def test_crash_leftover_kept_when_current_differs_from_spec(tmp_path):
    engine = FakeEngine()
    good_id, other_id = _interrupted_recreate(engine, tmp_path, port=5101)
    engine.start(other_id)
    # The wanted spec is the old one (port 5100): the current container (port 5101) is not what is wanted.
    result = converge(engine, spec(tmp_path))
    assert "ports differ" in result["actions"][0]
    assert engine.container("dh-it-reg")["Id"] == good_id


def test_crash_leftover_removed_when_current_answers_and_matches(tmp_path):
    engine = FakeEngine()
    good_id, new_id = _interrupted_recreate(engine, tmp_path, port=5101)
    engine.start(new_id)
    result = converge(engine, spec(tmp_path, port=5101))
    assert result["actions"] == ["remove leftover container dh-it-reg-dockhand-old (dh-it-reg answers and matches)"]
    assert engine.container("dh-it-reg")["Id"] == new_id
    assert engine.container(good_id) is None


def test_crash_leftover_check_mode_changes_nothing(tmp_path):
    engine = FakeEngine()
    _interrupted_recreate(engine, tmp_path)
    before = {cid: dict(c, State=dict(c["State"])) for cid, c in engine.containers.items()}
    result = converge(engine, spec(tmp_path), check_mode=True)
    assert result["changed"] is True
    assert engine.containers.keys() == before.keys()


def test_crash_each_rollback_step_best_effort(tmp_path, monkeypatch):
    """The new container cannot be removed: renaming back fails (name taken) but starting the old one still runs;
    the error says where the good copy is, and the next run repairs it."""
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    old_id = engine.container("dh-it-reg")["Id"]

    def cannot_remove(ref):
        raise EngineError("cannot remove container %s: device busy" % ref)

    def rename(ref, name):
        if engine.container(name) is not None:
            raise EngineError("cannot rename container %s: name %s in use" % (ref, name))
        engine._find(ref)["Name"] = "/" + name

    engine.fail_new_starts = True
    engine.remove_container = cannot_remove
    engine.rename = rename
    with pytest.raises(DockhandError) as err:
        converge(engine, spec(tmp_path, port=5101))
    text = str(err.value)
    assert "kept as dh-it-reg-dockhand-old" in text
    assert "remove the new container failed" in text and "rename dh-it-reg-dockhand-old back to dh-it-reg failed" in text
    assert engine.container(old_id)["State"]["Running"] is True, "the old container was started again all the same"
    engine.fail_new_starts = False
    del engine.remove_container, engine.rename
    converge(engine, spec(tmp_path))
    assert engine.container("dh-it-reg")["Id"] == old_id
    assert engine.container("dh-it-reg-dockhand-old") is None


# -- a lock per container name ----------------------------------------------------------------------
def _hold(key, seconds, ready):
    with host_lock("test", key, 5, "x"):
        ready.set()
        time.sleep(seconds)


def _holder(key: str, seconds: float) -> multiprocessing.Process:
    """A process holding the lock ``key`` for ``seconds``, started and holding it already."""
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(key, seconds, ready))
    holder.start()
    assert ready.wait(10)
    return holder


def test_lock_second_run_waits_then_proceeds():
    holder = _holder("dh-hd-lock-a", 1.0)
    try:
        started = time.monotonic()
        with host_lock("test", "dh-hd-lock-a", 10, "x"):
            waited = time.monotonic() - started
        assert waited > 0.5
    finally:
        holder.join()


def test_lock_wait_is_bounded():
    holder = _holder("dh-hd-lock-b", 3.0)
    try:
        with pytest.raises(DockhandError, match=r"another run has been changing registry container r for more than 0\.5s"):
            with host_lock("test", "dh-hd-lock-b", 0.5, "registry container r"):
                pass
    finally:
        holder.join()


def test_lock_released_when_holder_dies():
    holder = _holder("dh-hd-lock-c", 30)
    holder.kill()
    holder.join()
    with host_lock("test", "dh-hd-lock-c", 2, "x"):
        pass


# -- secrets ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["REGISTRY_HTTP_SECRET", "REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY",
                                 "REGISTRY_AUTH_TOKEN_ISSUER_TOKEN", "REGISTRY_NOTIFICATIONS_ENDPOINTS_HEADERS_AUTHORIZATION",
                                 "MY_PASSWORD_FILE", "REGISTRY_STORAGE_AZURE_ACCOUNTKEY"])
def test_secret_env_keys_masked(tmp_path, key):
    result = converge(FakeEngine(), spec(tmp_path, env={key: "v4lue", "X": "1"}))
    assert result["container"]["env"] == {key: "********", "X": "1"}
    assert "v4lue" not in repr(result)


def test_secret_env_option_merged_masked_and_compared(tmp_path):
    engine = FakeEngine()
    first = converge(engine, spec(tmp_path, secret_env={"ODDLY_NAMED": "s3cret"}))
    assert "ODDLY_NAMED=s3cret" in engine.container("dh-it-reg")["Config"]["Env"]
    assert first["container"]["env"] == {"ODDLY_NAMED": "********"}
    assert "s3cret" not in repr(first)
    assert converge(engine, spec(tmp_path, secret_env={"ODDLY_NAMED": "s3cret"}))["changed"] is False
    changed = converge(engine, spec(tmp_path, secret_env={"ODDLY_NAMED": "other"}))
    assert changed["actions"] == ["recreate container dh-it-reg (env differ)"]
    assert "other" not in repr(changed)


def test_secret_env_key_in_both_refused(tmp_path):
    with pytest.raises(DockhandError, match="REGISTRY_HTTP_SECRET is in both env and secret_env"):
        spec(tmp_path, env={"REGISTRY_HTTP_SECRET": "a"}, secret_env={"REGISTRY_HTTP_SECRET": "b"}).validate()


# -- config digest computed by the module ------------------------------------------------------------
def test_config_digest_from_mounted_files(tmp_path):
    auth = tmp_path / "htpasswd"
    auth.write_text("alice:x\n")
    mounts = [{"source": str(auth), "target": "/auth/htpasswd", "read_only": True, "type": "bind"}]
    engine = FakeEngine()
    converge(engine, spec(tmp_path, mounts=mounts))
    assert engine.container("dh-it-reg")["Config"]["Labels"][CONFIG_LABEL] == config_digest(spec(tmp_path, mounts=mounts))
    assert converge(engine, spec(tmp_path, mounts=mounts))["changed"] is False
    auth.write_text("alice:y\n")
    result = converge(engine, spec(tmp_path, mounts=mounts))
    assert result["actions"] == ["recreate container dh-it-reg (config_digest differ)"]
    assert converge(engine, spec(tmp_path, mounts=mounts))["changed"] is False


def test_config_digest_covers_files_in_mounted_directory_and_ignores_writable_mounts(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "server.crt").write_text("A")
    ro = [{"source": str(tmp_path / "certs"), "target": "/certs", "read_only": True, "type": "bind"}]
    rw = [{"source": str(tmp_path / "certs"), "target": "/certs", "read_only": False, "type": "bind"}]
    first = config_digest(spec(tmp_path, mounts=ro))
    assert config_digest(spec(tmp_path, mounts=rw)) == ""
    (tmp_path / "certs" / "server.crt").write_text("B")
    assert config_digest(spec(tmp_path, mounts=ro)) != first


def test_config_changed_predicts_restart_in_check_mode_only(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    checked = converge(engine, spec(tmp_path, config_changed=True), check_mode=True)
    assert checked["actions"] == ["recreate container dh-it-reg (config_digest differ)"]
    assert converge(engine, spec(tmp_path, config_changed=True))["changed"] is False


def test_config_digest_label_set(tmp_path):
    engine = FakeEngine()
    created = {}
    real = engine.create_container

    def capture(*args, **kwargs):
        created.update(kwargs.get("labels") or {})
        return real(*args, **kwargs)

    engine.create_container = capture
    converge(engine, spec(tmp_path, config_digest="mine"))
    assert created[CONFIG_LABEL] == config_digest(spec(tmp_path, config_digest="mine"))


# -- hardening ---------------------------------------------------------------------------------------
def test_hardening_defaults_passed_and_compared(tmp_path):
    engine = FakeEngine()
    converge(engine, spec(tmp_path))
    host = engine.container("dh-it-reg")["HostConfig"]
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["CapAdd"], host["SecurityOpt"]) == (
        True, ["ALL"], [], ["no-new-privileges"])
    result = converge(engine, spec(tmp_path, read_only=False, cap_drop=[], security_opts=[]))
    assert result["actions"] == ["recreate container dh-it-reg (hardening differ)"]
    assert result["container"]["hardening"] == "read_only=no cap_drop=- cap_add=- security_opt=-"


def test_hardening_engine_spellings_are_equal():
    container = {"HostConfig": {"ReadonlyRootfs": True, "CapDrop": ["all"], "CapAdd": ["CAP_NET_BIND_SERVICE"],
                                "SecurityOpt": ["no-new-privileges:true"]}}
    view = current_view(container, {})
    assert view["hardening"] == "read_only=yes cap_drop=ALL cap_add=NET_BIND_SERVICE security_opt=no-new-privileges"


def test_hardening_bad_capability_refused(tmp_path):
    with pytest.raises(DockhandError, match="invalid capability name 'NET ADMIN'"):
        spec(tmp_path, capabilities=["NET ADMIN"]).validate()


# -- readiness asked of a remote engine -----------------------------------------------------------------
class LogEngine:
    def __init__(self, logs, ports):
        self._logs, self._ports, self.since = logs, ports, []

    def container(self, ref):
        return {"State": {"Running": True, "StartedAt": "2026-11-30T02:25:36.084677645Z"},
                "NetworkSettings": {"Ports": self._ports}}

    def logs(self, ref, tail=5, since=None):
        self.since.append(since)
        return self._logs


def test_remote_engine_readiness_from_engine_side():
    engine = LogEngine('level=info msg="listening on [::]:5000"\n', {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5300"}]})
    assert wait_ready_in_engine(engine, "c" * 64, 5300, 5) < 1
    started = datetime.datetime(2026, 11, 30, 2, 25, 36, tzinfo=datetime.timezone.utc)
    assert engine.since == [int(started.timestamp())], "logs are read from the container's last start on"


@pytest.mark.parametrize("logs, port, reason", [
    ("level=info msg=starting\n", 5300, "has not logged 'listening on'"),
    ('msg="listening on [::]:5000"\n', 5301, "port 5301 not published"),
])
def test_remote_engine_readiness_times_out_naming_why(logs, port, reason):
    engine = LogEngine(logs, {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5300"}]})
    with pytest.raises(DockhandError, match=reason):
        wait_ready_in_engine(engine, "c" * 64, port, 0.3)


def test_remote_engine_never_probed_from_module_host(tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(container_mod, "wait_ready", lambda *a, **k: probed.append(a))
    monkeypatch.setattr(container_mod, "wait_ready_in_engine", lambda engine, cid, port, timeout, still=None: 0.1)
    engine = FakeEngine()  # local = False: a tcp:// or ssh:// docker_host
    converge(engine, spec(tmp_path, bind_address="127.0.0.1"))
    assert probed == []


def test_wildcard_ipv6_bind_probes_ipv6_loopback(tmp_path):
    runner = RegistryContainer(FakeEngine(), spec(tmp_path, bind_address="::"))
    assert runner.address == "[::1]:5100"


# -- a lock per TLS directory -----------------------------------------------------------------------------
def _generate_into(directory, go, queue):
    from ansible_collections.dockhand.registry.plugins.module_utils import tls

    go.wait(30)
    result = tls.generate(directory, ["localhost"], days=30, ca_days=60, renew_days=5)
    queue.put((result["changed"], open(directory + "/ca.crt").read()))


def test_lock_two_tls_generations_make_one_ca(tmp_path):
    """Runs started at the same instant: without the lock, several make a CA and overwrite each other's."""
    directory = str(tmp_path / "tls")
    queue, go = multiprocessing.Queue(), multiprocessing.Event()
    runs = [multiprocessing.Process(target=_generate_into, args=(directory, go, queue)) for _run in range(6)]
    for run in runs:
        run.start()
    time.sleep(0.5)
    go.set()
    for run in runs:
        run.join(60)
    results = [queue.get(timeout=5) for _run in runs]
    assert sorted(changed for changed, _ca in results) == [False] * 5 + [True], "one run made the CA, the others found it"
    assert len({ca for _changed, ca in results}) == 1
