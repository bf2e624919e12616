"""Under faults, what the collection says is what happened: a full disk, a registry killed in the middle of a run,
a registry restarted in the middle of a push, a login revoked in the middle of a run, a name that does not resolve, a
CA the engine or the module does not have. Each case runs against real registry containers (``docker kill`` for the
kills, a tmpfs of 3 MiB as the registry's data directory for the full disk) and checks the message (one line, the
cause once, every failed image named once) and the result fields against an oracle that shares no code with the
collection (tests/support/oracle.py).

Names from DH_PREFIX, ports DH_PORT_BASE +35..+39 (tests/integration/README.md), directories under DH_DATA_ROOT/faults.
The full-disk push takes about 50 s: the engine retries a layer upload the registry fails five times, with back-off.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import docker
import pytest
import requests

from support.engine import SHARED_DOCKER_HOST, ensure_registry_image, make_tls_files
from support.isolation import REGISTRY_IMAGE, name, path, port
from support.oracle import OracleError
from support.oracle import Registry as Oracle
from support.registry import wait_v2
from support.registry_api import push_image, push_images, tar_layer
from support.runner import role_playbook, run_module, run_playbook

from .reliability_support import build_image

WORK = path("faults")
FULL_PORT, KILL_PORT, SRC_PORT, DEST_PORT, TLS_PORT = port(35), port(36), port(37), port(38), port(39)
REPO = name("faults")  # repository prefix of every image name here (the cleanup finds them by it)


@pytest.fixture(scope="module")
def api():
    ensure_registry_image(SHARED_DOCKER_HOST, WORK / "registry-image")
    client = docker.APIClient(base_url=SHARED_DOCKER_HOST, version="auto")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    yield client
    for container in client.containers(all=True, filters={"name": name("faults-")}):
        client.remove_container(container["Id"], force=True)
    subprocess.run(["umount", str(WORK / "full")], capture_output=True, check=False)
    shutil.rmtree(WORK, ignore_errors=True)


# Registry containers a test started: removed when it ends (the next test may publish on the same port).
STARTED: list[str] = []


@pytest.fixture(autouse=True)
def own_registries(api):
    yield
    while STARTED:
        try:
            api.remove_container(STARTED.pop(), force=True)
        except docker.errors.NotFound:
            pass


def start_registry(api, suffix: str, port_number: int, data: str | None = None, env: dict | None = None,
                   binds: dict | None = None, bind_address: str = "127.0.0.1", restart: str = "no") -> str:
    """A registry container ``<prefix>faults-<suffix>`` publishing ``port_number``, its data in ``data`` (a host
    directory) when given; returns its name once ``/v2/`` answers."""
    container = name("faults-" + suffix)
    volumes = dict(binds or {})
    if data:
        os.makedirs(data, exist_ok=True)
        volumes[data] = {"bind": "/var/lib/registry", "mode": "rw"}
    host_config = api.create_host_config(
        port_bindings={5000: (bind_address, port_number)}, binds=volumes, restart_policy={"Name": restart}
    )
    api.create_container(REGISTRY_IMAGE, name=container, host_config=host_config, ports=[5000], environment=env or {})
    STARTED.append(container)
    api.start(container)
    scheme = "https" if env and env.get("REGISTRY_HTTP_TLS_CERTIFICATE") else "http"
    host = "[%s]" % bind_address if ":" in bind_address else bind_address
    answers("%s://%s:%d/v2/" % (scheme, host, port_number))
    return container


def answers(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers at all (200, or 401 with auth on; TLS not verified)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=1, verify=False).status_code in (200, 401):  # a readiness probe
                return
        except requests.exceptions.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("%s did not answer within %ss" % (url, timeout))
        time.sleep(0.05)


def image(api, tag: str, size: int) -> str:
    """A local image ``<prefix>faults-<tag>`` with ``size`` random bytes; its name."""
    local = "%s-%s" % (REPO, tag)
    build_image(api, local, os.urandom(size))
    return local


def assert_one_line(result: dict, *fragments: str) -> str:
    assert result.get("failed"), result
    assert not result.get("crashed"), result["msg"]
    msg = result["msg"]
    assert "\n" not in msg.strip(), msg
    for fragment in fragments:
        assert fragment in msg, "%r not in: %s" % (fragment, msg)
    print("\n    said: %s" % msg[:600])
    return msg


def when(condition, action, timeout: float = 120) -> threading.Thread:
    """A thread that runs ``action()`` as soon as ``condition()`` holds (a condition that raises does not hold yet:
    the registry is busy or not there), or after ``timeout`` seconds; join it."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    break
            except Exception:
                pass
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def tags_listed(address: str, **login) -> int:
    """How many tags the registry at ``address`` lists, in all repositories."""
    oracle = Oracle(address, timeout=2, **login)
    return sum(len(oracle.tags(repo)) for repo in oracle.catalog())


# -- a registry killed in the middle of a run ----------------------------------------------------------------------
def test_publish_with_the_registry_killed_mid_run_reports_what_happened(api, full_disk_push):
    # full_disk_push: started here, so that its 50 s of engine retries overlap with this file's other cases.
    registry = start_registry(api, "kill", KILL_PORT, str(WORK / "kill"))
    address = "localhost:%d" % KILL_PORT
    sources = [image(api, "k%d:1" % i, 300_000) for i in range(8)]
    targets = ["%s/%s/k%d:1" % (address, REPO, i) for i in range(8)]
    items = [{"source": source, "targets": [target]} for source, target in zip(sources, targets)]

    killer = when(lambda: tags_listed(address) >= 3, lambda: api.kill(registry))
    started = time.monotonic()
    result = run_module("image_publish", {"images": items, "workers": 1})
    seconds = time.monotonic() - started
    killer.join()
    pushed = [r for r in result["results"] if r["pushed"]]
    failed = [r for r in result["results"] if r.get("failed")]
    # The kill came once the registry listed 3 tags; the third may have landed without the engine hearing of it.
    assert 2 <= len(pushed) < 8 and len(pushed) + len(failed) == 8, result["results"]
    msg = assert_one_line(result, "%d pushes failed: " % len(failed), "registry %s is unreachable" % address)
    assert msg.count("is unreachable") == 1, msg  # one cause, said once
    for item in failed:
        assert msg.count(item["name"]) == 1 and not item["changed"] and item["digest"] is None, item
    assert result["changed"] is True and result["pushed"] == [r["name"] for r in pushed]
    assert all(not r.get("failed") and r["changed"] and r["digest"] for r in pushed)
    print("    %d of 8 pushed before the kill; the run ended %.1fs after it started" % (len(pushed), seconds))

    # What the result said was pushed is in the registry, with the digests it gave.
    api.start(registry)
    wait_v2(address)
    oracle = Oracle(address)
    for item in pushed:
        assert oracle.digest(item["repository"], "1") == item["digest"]
    landed = [r for r in failed if oracle.digest(r["repository"], "1")]
    assert len(landed) <= 1, landed  # at most the push in flight (workers 1) landed unheard
    # A re-run pushes what the registry lacks: the failed ones (but the one in flight, if its manifest landed).
    again = run_module("image_publish", {"images": items, "workers": 2})
    assert again["changed"] and not again.get("failed"), again
    assert set(again["pushed"]) <= {r["name"] for r in failed} and len(again["pushed"]) >= len(failed) - 1
    for item in again["images"]:
        oracle.verify_tag_whole(item["repository"], "1", item["digest"])
    assert not run_module("image_publish", {"images": items})["changed"]


def test_sync_with_the_destination_killed_mid_run_reports_what_happened(api):
    source, dest = "localhost:%d" % SRC_PORT, "localhost:%d" % DEST_PORT
    start_registry(api, "src", SRC_PORT, str(WORK / "src"))
    digests = push_images(source, "%s/app" % REPO, 24, marker=str(time.time()))
    registry = start_registry(api, "dest", DEST_PORT, str(WORK / "dest"))

    killer = when(lambda: tags_listed(dest) >= 6, lambda: api.kill(registry))
    result = run_module("image_sync", {"src_repository": "%s/%s/app" % (source, REPO), "dest_repository": "%s/%s/app" % (dest, REPO),
                                       "tag_pattern": "t.*", "workers": 2})
    killer.join()
    items = result["results"]
    copied = [r for r in items if r["action"] == "copied"]
    failed = [r for r in items if r["failed"]]
    # The kill came once the destination listed 6 tags; the copies in flight (2 workers) may have landed unheard.
    assert len(copied) >= 4 and failed and len(copied) + len(failed) == 24, [(r["dest"], r["action"]) for r in items]
    msg = assert_one_line(result, "image_sync failed for %d of 24 tags: " % len(failed))
    for item in failed:
        assert msg.count(item["dest"] + ",") + msg.count(item["dest"] + ":") == 1, (item["dest"], msg)
        assert item["action"] == "failed" and not item["changed"] and not item["digest_preserved"], item
    assert msg.count("registry %s" % dest) <= 3 < len(failed), msg  # a few causes (refused, reset...), each said once
    assert result["changed"] is True and sorted(result["synced"]) == sorted(r["dest"] for r in copied)
    assert all(r["changed"] and r["digest_preserved"] and r["digest"] == r["source_digest"] for r in copied)

    api.start(registry)
    wait_v2(dest)
    oracle = Oracle(dest)
    held, cut = {}, []
    for tag in oracle.tags("%s/app" % REPO):
        try:
            held[tag] = oracle.digest("%s/app" % REPO, tag)
        except OracleError:  # its link file cut by the kill: the registry answers 500 (seen about one run in ten)
            cut.append(tag)
    for item in copied:
        assert held[item["dest"].rsplit(":", 1)[1]] == item["digest"]
    assert len(held) + len(cut) - len(copied) <= 2, (sorted(held), cut)  # at most the copies in flight, unheard
    assert sorted(r["source_digest"] for r in items) == sorted(digests)
    print("    %d copied before the kill, %d more landed unheard, %d tags cut" % (len(copied), len(held) - len(copied), len(cut)))

    # The state a kill leaves one run in ten, made here every time: a tag whose link file is empty.
    first = copied[0]["dest"].rsplit(":", 1)[1]
    (WORK / "dest" / "docker/registry/v2/repositories" / REPO / "app/_manifests/tags" / first / "current/link").write_bytes(b"")
    info = run_module("registry_info", {"registry": dest})
    assert_one_line(info, "registry %s answered 500 to GET /v2/%s/app/manifests/%s" % (dest, REPO, first),
                    "(a tag whose files a crash cut answers so: registry_gc removes such dangling tags)")

    # What the message says to do: registry_gc removes the cut (dangling) tags, a new run copies the rest.
    collected = run_module("registry_gc", {"name": registry})
    assert "%s/app:%s" % (REPO, first) in collected["dangling_tags_removed"], collected
    again = run_module("image_sync", {"src_repository": "%s/%s/app" % (source, REPO), "dest_repository": "%s/%s/app" % (dest, REPO),
                                      "tag_pattern": "t.*", "workers": 2})
    assert again["changed"] and not again.get("failed"), again
    assert sorted(Oracle(dest).snapshot()["%s/app" % REPO].values()) == sorted(digests)


def test_registry_killed_in_the_middle_of_a_prune(api):
    """A prune cut by a kill fails in one line naming the registry; every tag the rules keep survives whole; a run
    after the restart deletes the rest. (Tags the kill leaves listed without a manifest, "dangling", are counted
    here; registry_info and registry_prune report and remove them.)"""
    address = "localhost:%d" % DEST_PORT
    registry = start_registry(api, "prune", DEST_PORT, str(WORK / "prune"), env={"REGISTRY_STORAGE_DELETE_ENABLED": "true"})
    repository = "%s/pruned" % REPO
    digests = push_images(address, repository, 60, marker=str(time.time()))
    keep = ["t%03d" % n for n in range(50, 60)]
    killer = when(lambda: len(Oracle(address, timeout=2).tags(repository)) <= 35, lambda: api.kill(registry))
    rules = [{"repository": repository, "keep_tags": keep, "keep_last": 0}]
    cut = run_module("registry_prune", {"registry": address, "rules": rules, "workers": 2})
    killer.join()
    assert_one_line(cut, "registry %s" % address)

    api.start(registry)
    wait_v2(address)
    for tag in keep:
        Oracle(address).verify_tag_whole(repository, tag, digests[int(tag[1:])])
    listed = Oracle(address).tags(repository)
    dangling = [tag for tag in listed if Oracle(address).digest(repository, tag) is None]
    print("    killed with %d tags listed, %d of them dangling" % (len(listed), len(dangling)))
    again = run_module("registry_prune", {"registry": address, "rules": rules})
    assert not again.get("failed"), again
    assert Oracle(address).snapshot()[repository] == {tag: digests[int(tag[1:])] for tag in keep}


# -- beyond: restarts, revoked logins, names that do not resolve, CAs -----------------------------------------------------
def test_registry_restarted_mid_push(api):
    """The engine retries what the restart cut; the push goes through (the policy always brings it back)."""
    registry = start_registry(api, "restart", KILL_PORT, str(WORK / "restart"), restart="always")
    address = "localhost:%d" % KILL_PORT
    sources = [image(api, "r%d:1" % i, 2_000_000) for i in range(3)]
    items = [{"source": s, "targets": ["%s/%s/r%d:1" % (address, REPO, i)]} for i, s in enumerate(sources)]
    thread = when(lambda: tags_listed(address) >= 1, lambda: api.restart(registry, timeout=0), timeout=60)
    result = run_module("image_publish", {"images": items, "workers": 1})
    thread.join()
    if result.get("failed"):  # the cut landed where the engine does not retry: the message says so, and a re-run completes
        assert_one_line(result, "(registry %s went away during the push and answers again now: a new run pushes what it lacks)" % address)
        result = run_module("image_publish", {"images": items})
    else:
        print("\n    the engine retried through the restart: every push went through")
    assert not result.get("failed") and result["changed"], result
    for item in result["images"]:
        Oracle(address).verify_tag_whole(item["repository"], "1", item["digest"])


def test_login_revoked_mid_run_names_the_user(api):
    auth = WORK / "auth"
    auth.mkdir(parents=True, exist_ok=True)
    htpasswd = auth / "htpasswd"
    htpasswd.write_text("alice:%s\n" % bcrypt.hashpw(b"pw-alice", bcrypt.gensalt(rounds=4)).decode())
    env = {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "faults", "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd"}
    registry = start_registry(api, "auth", DEST_PORT, str(WORK / "auth-data"), env=env,
                              binds={str(auth): {"bind": "/auth", "mode": "ro"}}, restart="always")
    address = "localhost:%d" % DEST_PORT
    sources = [image(api, "a%d:1" % i, 300_000) for i in range(6)]
    items = [{"source": s, "targets": ["%s/%s/a%d:1" % (address, REPO, i)]} for i, s in enumerate(sources)]

    def revoke() -> None:
        htpasswd.write_text("bob:%s\n" % bcrypt.hashpw(b"pw-bob", bcrypt.gensalt(rounds=4)).decode())
        api.restart(registry, timeout=0)  # htpasswd is read at start

    thread = when(lambda: tags_listed(address, username="alice", password="pw-alice") >= 2, revoke, timeout=60)
    result = run_module("image_publish", {"images": items, "workers": 1, "username": "alice", "password": "pw-alice",
                                          "registry_scheme": "http"})
    thread.join()
    msg = assert_one_line(result, "registry %s refused the login of user 'alice'" % address)
    assert "pw-alice" not in json.dumps(result)
    assert msg.count("refused the login") == 1
    # The push in flight when the login was revoked may have landed without the engine hearing of it: it reads as
    # failed. Every push the result reports is in the registry.
    assert result["changed"] is True and 1 <= len(result["pushed"]) < 6
    held = Oracle(address, username="bob", password="pw-bob")
    for item in result["results"]:
        if item["pushed"]:
            assert held.digest(item["repository"], "1") == item["digest"]


def test_name_that_does_not_resolve_and_a_wrong_ca(api, tmp_path):
    nowhere = run_module("image_sync", {"images": [{"src": "%s.invalid:5000/a:1" % REPO, "dest": "localhost:%d/a:1" % DEST_PORT}]})
    assert_one_line(nowhere, "registry %s.invalid:5000 is unreachable (https: Name or service not known); its host name does not"
                    " resolve here" % REPO)
    assert "Traceback" not in nowhere["msg"] and len(nowhere["msg"]) < 400

    # A TLS registry on the host's bridge address (not loopback: the engine verifies it, the module needs no
    # plain-HTTP fallback) whose CA neither the engine nor the module was given.
    config = api.inspect_network("bridge")["IPAM"]["Config"][0]
    bridge = config.get("Gateway") or str(ipaddress.ip_network(config["Subnet"])[1])
    files = make_tls_files(tmp_path / "tls", (bridge,))
    other = make_tls_files(tmp_path / "other", (bridge,))
    env = {"REGISTRY_HTTP_TLS_CERTIFICATE": "/certs/server-cert.pem", "REGISTRY_HTTP_TLS_KEY": "/certs/server-key.pem"}
    start_registry(api, "tls", TLS_PORT, str(WORK / "tls-data"), env=env, binds={str(tmp_path / "tls"): {"bind": "/certs", "mode": "ro"}},
                   bind_address=bridge)
    address = "%s:%d" % (bridge, TLS_PORT)
    source = image(api, "tls:1", 1000)
    item = {"source": source, "targets": ["%s/%s/tls:1" % (address, REPO)]}

    wrong = run_module("image_publish", {"images": [item], "registry_ca_cert": str(other["ca"])})
    assert_one_line(wrong, "registry %s is unreachable (https: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:" % address,
                    "its certificate is not trusted: give the CA that issued it as registry_ca_cert")
    assert wrong["tagged"] == item["targets"] and not wrong.get("pushed")  # refused before any push

    untrusted = run_module("image_publish", {"images": [item], "registry_ca_cert": str(files["ca"])})
    assert_one_line(untrusted, "the Docker engine does not trust the certificate of registry %s" % address,
                    "/etc/docker/certs.d/%s/ca.crt" % address)
    assert untrusted["results"][0]["pushed"] is False


# -- IPv6 registries, TLS names -------------------------------------------------------------------------------------
def test_ipv6_registry_address_where_the_engine_is_not_involved(api):
    """Docker 20.10 cannot name an image after [::1]:port (image_tag, image_push and image_publish refuse it up front,
    test_bad_input); the modules that speak only the registry API take it."""
    v6 = "[::1]:%d" % SRC_PORT
    start_registry(api, "v6", SRC_PORT, str(WORK / "v6"), env={"REGISTRY_STORAGE_DELETE_ENABLED": "true"}, bind_address="::1")
    start_registry(api, "v4", DEST_PORT, str(WORK / "v4"))
    repository = "%s/v6" % REPO
    digests = [push_image(v6, repository, tag, [tar_layer("file", "v6 image %s\n" % tag)])["digest"] for tag in "123"]

    synced = run_module("image_sync", {"images": [{"src": "%s/%s:3" % (v6, repository), "dest": "localhost:%d/%s:3" % (DEST_PORT, repository)}]})
    assert synced["changed"] and not synced.get("failed"), synced
    assert Oracle("localhost:%d" % DEST_PORT).digest(repository, "3") == digests[2]

    info = run_module("registry_info", {"registry": v6})
    assert not info.get("failed") and [t["digest"] for t in info["repositories"][0]["tags"]] == digests, info

    pruned = run_module("registry_prune", {"registry": v6, "rules": [{"repository": repository, "keep_last": 1}]})
    assert pruned["changed"] and not pruned.get("failed"), pruned
    assert Oracle(v6).snapshot()[repository] == {"3": digests[2]}


def test_ipv6_tls_name_gets_the_engines_trust_directory_and_a_new_ca_is_installed_again(api, tmp_path):
    """registry_tls_names [::1] (brackets or not) is the trust directory [::1]:<port>, as the engine names it; a CA
    made again because its key was lost is installed again, with a warning that every client needs it."""
    port_number = TLS_PORT
    directories = [Path("/etc/docker/certs.d/%s:%d" % (host, port_number)) for host in ("[::1]", "[[::1]]", "localhost", "::1")]
    role_vars = {
        "registry_container_name": name("faults-role"),
        "registry_port": port_number,
        "registry_data_path": str(WORK / "role-data"),
        "registry_tls_generate": True,
        "registry_tls_names": ["[::1]", "localhost"],
        "registry_tls_dir": str(WORK / "role-tls"),
        "registry_auth_htpasswd": str(WORK / "role-auth" / "htpasswd"),
        "registry_image_pull": False,
    }
    STARTED.append(role_vars["registry_container_name"])
    try:
        first = run_playbook(role_playbook(tmp_path / "role.yml", "localhost", "registry", role_vars))
        assert first.returncode == 0, first.stdout[-3000:]
        ca = (WORK / "role-tls" / "ca.crt").read_bytes()
        assert (directories[0] / "ca.crt").read_bytes() == ca and (directories[2] / "ca.crt").read_bytes() == ca
        assert not directories[1].exists() and not directories[3].exists()

        (WORK / "role-tls" / "ca.key").unlink()
        second = run_playbook(role_playbook(tmp_path / "role.yml", "localhost", "registry", role_vars))
        assert second.returncode == 0, second.stdout[-3000:]
        said = " ".join((second.stdout + second.stderr).split())
        assert "made a new CA in %s because the old one cannot be kept (its key %s/ca.key is missing" % (
            WORK / "role-tls", WORK / "role-tls") in said, said[-3000:]
        new_ca = (WORK / "role-tls" / "ca.crt").read_bytes()
        assert new_ca != ca
        assert (directories[0] / "ca.crt").read_bytes() == new_ca and (directories[2] / "ca.crt").read_bytes() == new_ca
    finally:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)


# -- a full disk ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_disk_push(api):
    """A registry whose data directory is a tmpfs of 3 MiB, and the push of a 4.5 MB image into it, in the
    background: the engine retries the upload the registry fails five times, with back-off (about 50 s). The first
    case of this file starts it, so that it runs while the others do; test_full_disk_... reads its result."""
    data = WORK / "full"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(data)], check=True)
    registry = start_registry(api, "full", FULL_PORT, str(data))
    STARTED.remove(registry)  # kept for the module
    address = "localhost:%d" % FULL_PORT
    target = "%s/%s/big:1" % (address, REPO)
    big = image(api, "big:1", 4_500_000)
    done: dict = {"data": data, "registry": registry, "address": address, "target": target}

    def push() -> None:
        started = time.monotonic()
        done["result"] = run_module("image_publish", {"images": [{"source": big, "targets": [target]}]})
        done["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    done["join"] = thread.join
    yield done
    thread.join()
    api.remove_container(registry, force=True)
    subprocess.run(["umount", str(data)], capture_output=True, check=False)


def test_full_disk_names_the_cause_the_place_and_what_to_do(api, full_disk_push):
    full_disk_push["join"]()
    result, data, address, target = (full_disk_push[k] for k in ("result", "data", "address", "target"))
    msg = assert_one_line(result, "push of %s failed: registry %s has no space left on device (%s, " % (target, address, data),
                          " in abandoned uploads; run registry_gc with uploads_older_than_minutes 0")
    assert msg.count("no space left") == 1
    item = result["results"][0]
    assert (item["pushed"], item["failed"], item["changed"], item["digest"], item["tagged"]) == (False, True, False, None, True)
    assert result["changed"] is True and result["tagged"] == [target] and result["pushed"] == []  # the tag was made
    assert Oracle(address).tags("%s/big" % REPO) == []
    print("    full-disk push failed after %.1fs (engine retries)" % full_disk_push["seconds"])

    # registry_info says how much room there is, by container name and by path.
    for where in ({"container": full_disk_push["registry"]}, {"data_path": str(data)}):
        info = run_module("registry_info", dict(registry=address, details=False, **where))
        assert not info.get("failed"), info
        storage = info["storage"]
        assert storage["data_path"] == str(data) and storage["bytes_total"] == 3 * 1024 * 1024
        assert storage["bytes_free"] < 64 * 1024 and storage["upload_bytes"] > 2_000_000 and storage["uploads"] >= 1
        assert any("pushes fail when it is full" in str(w) for w in info["warnings"]), info["warnings"]

    # image_sync (the registry API, no engine) reads the same cause from the registry's error body.
    source = "localhost:%d" % SRC_PORT
    start_registry(api, "full-src", SRC_PORT, str(WORK / "full-src"))
    push_image(source, "%s/big" % REPO, "1", [tar_layer("file", os.urandom(2_000_000).hex())])
    synced = run_module("image_sync", {"images": [{"src": "%s/%s/big:1" % (source, REPO), "dest": "%s/%s/big:2" % (address, REPO)}]})
    assert_one_line(synced, "image_sync failed for 1 of 1 tags: %s/%s/big:2: registry %s has no space left on device" % (address, REPO, address))
    assert synced["changed"] is False and synced["results"][0]["action"] == "failed"
    assert not synced["results"][0]["digest_preserved"]

    # What the message says to do frees the room.
    freed = run_module("registry_gc", {"name": full_disk_push["registry"], "uploads_older_than_minutes": 0})
    assert freed["changed"] and freed["upload_bytes_removed"] > 2_000_000, freed
    after = run_module("registry_info", {"registry": address, "details": False, "data_path": str(data)})["storage"]
    assert after["upload_bytes"] == 0 and after["bytes_free"] > 2_000_000, after
