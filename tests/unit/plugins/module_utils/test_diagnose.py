"""Why a registry failed, in one line (module_utils/diagnose.py): its error body, its log, its storage's room."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.diagnose import (
    PushDiagnosis,
    RegistryStorageError,
    StorageCause,
    data_mount_source,
    human_size,
    storage_cause,
    storage_message,
    storage_usage,
    with_storage,
)
from ansible_collections.dockhand.registry.plugins.module_utils.engine import last_error
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryAuthError, RegistryError, RegistryUnreachable
from ansible_collections.dockhand.registry.tests.support.unit import FakeResponse, registry_client

UPLOAD = "/var/lib/registry/docker/registry/v2/repositories/big/_uploads/3838b4b8/startedat"
# What distribution 2.8.2 answered to POST /v2/big/blobs/uploads/ on a full tmpfs (read from the real registry).
FULL_BODY = {
    "errors": [
        {
            "code": "UNKNOWN",
            "message": "unknown error",
            "detail": {"DriverName": "filesystem", "Enclosed": {"Op": "write", "Path": UPLOAD, "Err": errno.ENOSPC}},
        }
    ]
}
# ... and the line it logged for it.
FULL_LOG = (
    'time="2026-12-07T10:32:30.51Z" level=error msg="response completed with error" err.code=unknown'
    ' err.detail="filesystem: write %s: no space left on device" err.message="unknown error"' % UPLOAD
)


# -- reading the registry's words ---------------------------------------------------------
def test_storage_cause_from_the_error_body():
    cause = storage_cause(FULL_BODY)
    assert cause == StorageCause("no space left on device", UPLOAD)
    assert cause.full and cause.root == "/var/lib/registry"


def test_storage_cause_from_a_log_line():
    cause = storage_cause(FULL_LOG)
    assert cause.words == "no space left on device" and cause.path == UPLOAD


@pytest.mark.parametrize(
    "answer, words",
    [
        ({"errors": [{"detail": {"Enclosed": {"Path": "/x", "Err": errno.EROFS}}}]}, "read-only file system"),
        ({"errors": [{"detail": "write /data/docker/registry/v2/x: permission denied"}]}, "permission denied"),
        ("level=error msg=\"write /v/x: disk quota exceeded\"", "disk quota exceeded"),
    ],
)
def test_storage_cause_other_storage_errors(answer, words):
    assert storage_cause(answer).words == words


@pytest.mark.parametrize("answer", [{"errors": [{"code": "UNKNOWN", "detail": {}}]}, "level=error msg=oops", None, 5])
def test_no_storage_cause(answer):
    assert storage_cause(answer) is None


def test_last_error_line_of_a_log():
    assert last_error("a\nlevel=info b\n" + FULL_LOG + "\nlevel=info c\n") == FULL_LOG
    assert last_error("one\ntwo\n") == "two"
    assert last_error("") == ""


# -- the message --------------------------------------------------------------------------
def test_full_disk_message_names_the_place_the_room_and_the_uploads():
    usage = {"bytes_free": 0, "bytes_total": 3145728, "uploads": 6, "upload_bytes": 2500000}
    text = storage_message("localhost:5000", storage_cause(FULL_BODY), "/srv/registry", usage)
    assert text == (
        "registry localhost:5000 has no space left on device (/srv/registry, 0 B free of 3.1 MB): 2.5 MB in abandoned"
        " uploads; run registry_gc with uploads_older_than_minutes 0"
    )


def test_full_disk_message_without_uploads_or_without_the_storage():
    cause = storage_cause(FULL_BODY)
    usage = {"bytes_free": 0, "bytes_total": 10**9, "uploads": 0, "upload_bytes": 0}
    assert "registry_prune" in storage_message("r:5000", cause, "/srv/r", usage)
    remote = storage_message("r:5000", cause)
    assert remote.startswith("registry r:5000 has no space left on device (/var/lib/registry in its container)")
    assert "registry_gc" in remote and "\n" not in remote


def test_other_storage_error_message():
    cause = StorageCause("read-only file system", "/var/lib/registry/docker/registry/v2/x")
    assert storage_message("r:5000", cause) == (
        "registry r:5000 cannot write its storage (/var/lib/registry in its container): read-only file system"
    )


@pytest.mark.parametrize("count, text", [(0, "0 B"), (999, "999 B"), (2500000, "2.5 MB"), (3145728, "3.1 MB"), (5 * 10**12, "5.0 TB")])
def test_human_size(count, text):
    assert human_size(count) == text


# -- the storage on this host -------------------------------------------------------------
def _upload(root, repository, uuid, size):
    session = root / "docker/registry/v2/repositories" / repository / "_uploads" / uuid
    session.mkdir(parents=True)
    (session / "data").write_bytes(b"x" * size)
    (session / "startedat").write_text("2026-12-07T10:32:30Z")


def test_storage_usage_counts_upload_sessions_of_nested_repositories(tmp_path):
    _upload(tmp_path, "team/app", "u1", 1000)
    _upload(tmp_path, "team/app", "u2", 500)
    _upload(tmp_path, "solo", "u3", 10)
    (tmp_path / "docker/registry/v2/repositories/solo/_layers/sha256/aa").mkdir(parents=True)
    usage = storage_usage(str(tmp_path))
    assert usage["uploads"] == 3
    assert usage["upload_bytes"] == 1510 + 3 * len("2026-12-07T10:32:30Z")
    assert usage["bytes_total"] > 0 and usage["path"] == str(tmp_path)


def test_storage_usage_of_a_path_this_host_cannot_read(tmp_path):
    assert storage_usage(str(tmp_path / "missing")) is None


def test_data_mount_source_bind_volume_and_nested_root():
    bind = {"Mounts": [{"Destination": "/var/lib/registry", "Source": "/srv/r"}, {"Destination": "/auth", "Source": "/a"}]}
    volume = {"Mounts": [{"Type": "volume", "Destination": "/var/lib/registry/", "Source": "/var/lib/docker/volumes/v/_data"}]}
    assert data_mount_source(bind) == "/srv/r"
    assert data_mount_source(volume) == "/var/lib/docker/volumes/v/_data"
    assert data_mount_source({"Mounts": [{"Destination": "/data", "Source": "/srv/d"}]}, "/data/reg") == "/srv/d/reg"
    assert data_mount_source({"Mounts": []}) is None


# -- registry_info's storage ----------------------------------------------------------------
class Engine:
    def __init__(self, containers=None, local=True):
        self.containers = containers or {}
        self.local = local

    def container(self, name):
        return self.containers.get(name)


def read(params):
    """catalog_info as with_storage sees it: the storage use of ``data_path`` when it is set."""
    result = {"changed": False, "repositories": []}
    if params.get("data_path"):
        result["storage"] = {"data_path": params["data_path"], "upload_bytes": 5}
    return result


def test_with_storage_data_path_and_container(tmp_path):
    by_path = with_storage(read, {"data_path": str(tmp_path), "container": None}, lambda: pytest.fail("no engine"))
    assert by_path["storage"]["data_path"] == str(tmp_path) and by_path["storage"]["bytes_free"] > 0
    assert by_path["storage"]["bytes_total"] >= by_path["storage"]["bytes_free"]
    engine = Engine({"reg": {"Name": "/reg", "Mounts": [{"Destination": "/var/lib/registry", "Source": str(tmp_path)}]}})
    by_name = with_storage(read, {"data_path": None, "container": "reg"}, lambda: engine)
    assert by_name["storage"]["data_path"] == str(tmp_path) and "bytes_free" in by_name["storage"]
    assert "storage" not in with_storage(read, {"data_path": None, "container": None}, lambda: pytest.fail("no engine"))


def test_with_storage_refusals():
    def never(params):
        pytest.fail("the registry must not be read")

    with pytest.raises(DockhandError, match="container '' is not a container name"):
        with_storage(never, {"data_path": None, "container": ""}, Engine)
    with pytest.raises(DockhandError, match="there is no container ghost on the engine"):
        with_storage(never, {"data_path": None, "container": "ghost"}, Engine)
    bare = Engine({"reg": {"Name": "/reg", "Mounts": []}})
    with pytest.raises(DockhandError, match="container reg mounts nothing at its storage directory"):
        with_storage(never, {"data_path": None, "container": "reg"}, lambda: bare)


def test_with_storage_remote_engine_and_nearly_full(tmp_path, monkeypatch):
    remote = Engine({"reg": {"Name": "/reg", "Mounts": [{"Destination": "/var/lib/registry", "Source": "/x"}]}}, local=False)
    far = with_storage(read, {"data_path": None, "container": "reg"}, lambda: remote)
    assert far["storage"] is None and "remote engine" in far["warnings"][0]

    class Full:
        f_bavail, f_frsize, f_blocks = 1, 4096, 1000

    monkeypatch.setattr(os, "statvfs", lambda path: Full)
    full = with_storage(read, {"data_path": str(tmp_path), "container": None}, Engine)
    assert full["storage"]["bytes_free"] == 4096 and full["storage"]["bytes_total"] == 4096000
    assert full["warnings"] == [
        "registry storage %s has 4.1 kB free of 4.1 MB: pushes fail when it is full; 5 B in upload sessions"
        " (registry_gc with uploads_older_than_minutes 0 removes them)" % tmp_path
    ]


# -- diagnosing failed pushes ------------------------------------------------------------------
@pytest.fixture(autouse=True)
def quick_comeback(monkeypatch):
    monkeypatch.setattr(PushDiagnosis, "back_within", 0.6)


class Client:
    def __init__(self, ping_error=None, write_error=None, down_for=None):
        self.ping_error = ping_error
        self.write_error = write_error
        self.down_for = down_for  # pings that fail before it answers again
        self.asked = []

    def ping(self):
        self.asked.append("ping")
        if self.down_for is not None:
            self.down_for -= 1
            if self.down_for >= 0:
                raise RegistryUnreachable("registry r:5000 is unreachable: Connection refused")
            return 200
        if self.ping_error:
            raise self.ping_error
        return 200

    def probe_write(self, repository):
        self.asked.append("write " + repository)
        if self.write_error:
            raise self.write_error


class LogEngine:
    def __init__(self, log="", local=True, mounts=None):
        self.local = local
        self.log = log
        self.mounts = mounts or []
        self.asked = []

    def container_publishing(self, port, host=None):
        self.asked.append((port, host))
        return {"Id": "c1", "Mounts": self.mounts}

    def logs(self, container, tail=5):
        return self.log


def test_unreachable_registry_is_said_once_in_the_clients_words():
    client = Client(ping_error=RegistryUnreachable("registry localhost:5000 is unreachable: Connection refused"))
    diagnosis = PushDiagnosis(LogEngine(), lambda registry: client)
    reason = 'Get "http://localhost:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'
    assert diagnosis.explain("localhost:5000", "a", reason) == "registry localhost:5000 is unreachable: Connection refused"
    asked = len(client.asked)  # one ping, then a few while it is watched for a comeback
    for repository in ("b", "c"):
        assert diagnosis.explain("localhost:5000", repository, reason) == "registry localhost:5000 is unreachable: Connection refused"
    assert len(client.asked) == asked  # the same cause is found once for all


def test_killed_registry_said_in_its_last_words():
    """The push in flight meets a reset, the next ones a refusal: both are told as the registry's last answer."""
    errors = iter(["Connection reset by peer"] + ["Connection refused"] * 10)
    client = Client()

    def ping():
        client.asked.append("ping")
        raise RegistryUnreachable("registry r:5000 is unreachable: %s" % next(errors))

    client.ping = ping
    diagnosis = PushDiagnosis(LogEngine(local=False), lambda registry: client)
    assert diagnosis.explain("r:5000", "a", "EOF") == "registry r:5000 is unreachable: Connection refused"
    assert diagnosis.explain("r:5000", "b", "dial tcp: connect: connection refused") == "registry r:5000 is unreachable: Connection refused"


def test_registry_that_went_away_and_came_back():
    client = Client(down_for=2)
    text = PushDiagnosis(LogEngine(local=False), lambda registry: client).explain("r:5000", "a", "EOF")
    assert text == "EOF (registry r:5000 went away during the push and answers again now: a new run pushes what it lacks)"


def test_revoked_login_found_once_the_restarted_registry_answers():
    client = Client(down_for=1)
    client.ping_error = RegistryAuthError("registry r:5000 refused the login of user 'ci'")

    def ping():
        client.asked.append("ping")
        client.down_for -= 1
        if client.down_for >= 0:
            raise RegistryUnreachable("registry r:5000 is unreachable: Connection refused")
        raise client.ping_error

    client.ping = ping
    text = PushDiagnosis(LogEngine(local=False), lambda registry: client).explain("r:5000", "a", "EOF")
    assert text == "registry r:5000 refused the login of user 'ci'"


def test_revoked_login_is_named():
    client = Client(ping_error=RegistryAuthError("registry r:5000 refused the login of user 'ci'"))
    text = PushDiagnosis(LogEngine(local=False), lambda registry: client).explain("r:5000", "a", "unauthorized: authentication required")
    assert text == "registry r:5000 refused the login of user 'ci'"


def test_full_disk_through_the_error_body_and_the_local_storage(tmp_path):
    _upload(tmp_path, "big", "u1", 2000)
    client = Client(write_error=RegistryStorageError(storage_message("localhost:5000", storage_cause(FULL_BODY))))
    engine = LogEngine(mounts=[{"Destination": "/var/lib/registry", "Source": str(tmp_path)}])
    text = PushDiagnosis(engine, lambda registry: client).explain(
        "localhost:5000", "big", "received unexpected HTTP status: 500 Internal Server Error")
    assert text.startswith("registry localhost:5000 has no space left on device (%s, " % tmp_path)
    assert text.endswith("in abandoned uploads; run registry_gc with uploads_older_than_minutes 0")
    assert client.asked == ["ping", "write big"] and engine.asked == [(5000, None)]


def test_full_disk_through_the_containers_log_when_a_small_write_still_passes(tmp_path):
    engine = LogEngine(log="level=info x\n" + FULL_LOG + "\n", mounts=[{"Destination": "/var/lib/registry", "Source": str(tmp_path)}])
    text = PushDiagnosis(engine, lambda registry: Client()).explain("127.0.0.1:5000", "big", "received unexpected HTTP status: 500 Internal Server Error")
    assert text.startswith("registry 127.0.0.1:5000 has no space left on device (%s, " % tmp_path)


def test_other_server_error_keeps_the_engines_words_and_adds_the_log():
    engine = LogEngine(log='level=error msg="something else broke"')
    text = PushDiagnosis(engine, lambda registry: Client()).explain("localhost:5000", "a", "received unexpected HTTP status: 502 Bad Gateway")
    assert text == (
        'registry localhost:5000 failed the push (received unexpected HTTP status: 502 Bad Gateway);'
        ' registry log: level=error msg="something else broke"'
    )


def test_registry_back_after_a_restart():
    text = PushDiagnosis(LogEngine(local=False), lambda registry: Client()).explain("r:5000", "a", "EOF")
    assert text == "EOF (registry r:5000 answers now: a new run pushes what it lacks)"


def test_push_denied_to_a_login_that_may_read():
    client = Client(write_error=RegistryAuthError("registry r:5000 refused the login of user 'reader'"))
    text = PushDiagnosis(LogEngine(local=False), lambda registry: client).explain(
        "r:5000", "a", "denied: requested access to the resource is denied")
    assert text == "registry r:5000 refused the login of user 'reader'" and client.asked == ["ping", "write a"]
    said = PushDiagnosis(LogEngine(local=False), lambda registry: Client()).explain("r:5000", "a", "denied: no")
    assert said == "denied: no"  # the registry takes the write: the engine's words stand


def test_engine_without_the_registrys_ca():
    text = PushDiagnosis(LogEngine(), lambda registry: pytest.fail("no need to ask")).explain(
        "r.example:5000", "a", "Get \"https://r.example:5000/v2/\": x509: certificate signed by unknown authority")
    assert text.startswith("the Docker engine does not trust the certificate of registry r.example:5000 (")
    assert "/etc/docker/certs.d/r.example:5000/ca.crt" in text


def test_image_errors_are_not_the_registrys():
    text = PushDiagnosis(LogEngine(), lambda registry: pytest.fail("no need to ask")).explain("r:5000", "a", "tag does not exist: r:5000/a:1")
    assert text == "tag does not exist: r:5000/a:1"


def test_a_failing_diagnosis_never_hides_the_failure():
    def broken(registry):
        raise RuntimeError("boom")

    assert PushDiagnosis(LogEngine(), broken).explain("r:5000", "a", "EOF") == "EOF"


def test_container_of_a_non_loopback_address_is_matched_by_host():
    engine = LogEngine()
    PushDiagnosis(engine, lambda registry: Client())._container("192.0.2.7:5000")
    PushDiagnosis(engine, lambda registry: Client())._container("[::1]:5001")
    assert engine.asked == [(5000, "192.0.2.7"), (5001, None)]


# -- the registry client's own errors ------------------------------------------------------------
def test_client_names_a_full_storage_instead_of_the_http_status():
    client, _session = registry_client(lambda method, url, **kw: FakeResponse(500, body=FULL_BODY))
    with pytest.raises(RegistryStorageError) as caught:
        client.start_upload("big")
    assert str(caught.value).startswith("registry localhost:5100 has no space left on device (/var/lib/registry in its container)")


def test_a_tag_a_crash_cut_says_what_repairs_it():
    """distribution 2.8 answers 500 with no detail to a tag whose link file is empty (cut by a kill while written)."""
    unknown = {"errors": [{"code": "UNKNOWN", "message": "unknown error", "detail": {}}]}
    client, _session = registry_client(lambda method, url, **kw: FakeResponse(500, body=unknown))
    with pytest.raises(RegistryError) as caught:
        client.manifest_digest("app", "t5")
    assert str(caught.value).endswith("(a tag whose files a crash cut answers so: registry_gc removes such dangling tags)")
    with pytest.raises(RegistryError) as other:
        client.delete_manifest("app", "sha256:" + "a" * 64)
    assert "crash" not in str(other.value)


def test_probe_write_cancels_the_upload_it_opened():
    def answer(method, url, **kw):
        if method == "POST":
            return FakeResponse(202, {"Location": "/v2/a/blobs/uploads/u1"})
        return FakeResponse(204)

    client, session = registry_client(answer)
    client.probe_write("a")
    assert [(m, u) for m, u, _kw in session.calls] == [
        ("POST", "http://localhost:5100/v2/a/blobs/uploads/"),
        ("DELETE", "http://localhost:5100/v2/a/blobs/uploads/u1"),
    ]
