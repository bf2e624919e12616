"""Bad input: each case fails with one line naming the bad value, and leaves nothing half-done.

Real engine (the shared one), real registries. A registry (``<DH_PREFIX>rel-bad``, port 10 of the run's range) runs with one image
pushed before the cases; after each case the test checks that the same container still runs (same ID, same
start time), still answers ``/v2/``, and serves exactly the same tags and digests as before.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

import bcrypt
import docker
import pytest

from support.engine import SHARED_DOCKER_HOST, ensure_registry_image
from support.isolation import path, port
from support.registry import client, tag_digests, wait_v2
from support.runner import run_module

from .reliability_support import REL, build_image, run_role_failure

WORK = path("rel", "bad-input")
NAME = f"{REL}-bad"
PORT = port(10)
ADDRESS = "localhost:%d" % PORT
AUTH_NAME = f"{REL}-auth"
AUTH_PORT = port(12)
ARGSPEC_HEADER = "Validation of arguments failed:"
FREE_PORT = port(19)  # nothing listens here
GOOD = f"%s/{REL}/good:1" % ADDRESS
NEW = f"%s/{REL}/new:1" % ADDRESS
IMAGES = (f"{REL}-good:1", f"{REL}-new:1", GOOD, NEW, f"localhost:%d/{REL}/good:1" % FREE_PORT,
          f"localhost:%d/{REL}/good:1" % AUTH_PORT)


def registry_args(**overrides) -> dict:
    args = {
        "name": NAME,
        "image": "registry:2",
        "port": PORT,
        "data_path": str(WORK / "data"),
        "restart_policy": "always",
    }
    args.update(overrides)
    return args


@pytest.fixture(scope="module")
def api():
    ensure_registry_image(SHARED_DOCKER_HOST, WORK.parent / "registry-image")
    return docker.APIClient(base_url=SHARED_DOCKER_HOST, version="auto")


@pytest.fixture(scope="module")
def registry(api):
    """The running registry the cases must not disturb, holding one pushed image."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    result = run_module("registry_container", registry_args())
    assert result.get("changed") and not result.get("failed"), result
    build_image(api, f"{REL}-good:1", b"good")
    build_image(api, f"{REL}-new:1", b"new")
    api.tag(f"{REL}-good:1", f"%s/{REL}/good" % ADDRESS, "1")
    api.tag(f"{REL}-new:1", f"%s/{REL}/new" % ADDRESS, "1")
    pushed = run_module("image_push", {"name": GOOD})
    assert pushed.get("changed"), pushed
    yield
    for name in (NAME, AUTH_NAME):
        try:
            api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
    for image in IMAGES:
        try:
            api.remove_image(image)
        except docker.errors.NotFound:
            pass
    subprocess.run(["umount", str(WORK / "ro")], capture_output=True, check=False)
    shutil.rmtree(WORK, ignore_errors=True)


@pytest.fixture
def unchanged(api, registry):
    """Snapshot the running registry; after the case, assert it is exactly as it was."""
    before = api.inspect_container(NAME)
    contents = tag_digests(ADDRESS)
    assert contents, "the registry should hold the good image"
    yield
    after = api.inspect_container(NAME)
    assert after["Id"] == before["Id"], "the registry container was replaced"
    assert after["State"]["Running"], "the registry container was stopped"
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"], "the registry container was restarted"
    assert not any(c["Names"][0] == "/%s-dockhand-old" % NAME for c in api.containers(all=True))
    wait_v2(ADDRESS, timeout=5)
    assert tag_digests(ADDRESS) == contents, "the registry contents changed"


def assert_refused(result: dict, *values: str) -> str:
    """The task failed cleanly: no crash, one line, naming each bad value; return the message."""
    assert result.get("failed"), result
    assert not result.get("crashed"), result["msg"]
    msg = result["msg"]
    # ansible-core formats a role's argument-spec errors as this header, a newline, then one line per
    # error: the header is ansible's, the error must be one line.
    msg = msg.replace(ARGSPEC_HEADER + "\n", ARGSPEC_HEADER + " ", 1)
    assert "\n" not in msg.strip(), "error spans several lines: %r" % msg
    for value in values:
        assert value in msg, "%r not named in: %s" % (value, msg)
    print("\n    refused: %s" % msg)
    return msg


# -- the registry container -----------------------------------------------------------------
def test_port_out_of_range_via_role(unchanged, tmp_path):
    result = run_role_failure(
        "registry",
        {"registry_container_name": NAME, "registry_port": 70000, "registry_data_path": str(WORK / "data")},
        SHARED_DOCKER_HOST, tmp_path,
    )
    assert_refused(result, "70000")


def test_port_taken_by_another_process(unchanged):
    holder = socket.socket()
    holder.bind(("127.0.0.1", port(11)))
    holder.listen()
    try:
        assert_refused(run_module("registry_container", registry_args(port=port(11))), str(port(11)), "in use")
    finally:
        holder.close()


def test_bind_address_not_on_this_host(unchanged):
    assert_refused(run_module("registry_container", registry_args(bind_address="192.0.2.10")), "192.0.2.10")


def test_data_path_is_a_file(unchanged):
    a_file = WORK / "a-file"
    a_file.write_text("not a directory")
    assert_refused(run_module("registry_container", registry_args(data_path=str(a_file))), str(a_file))
    assert_refused(run_module("registry_container", registry_args(data_path=str(a_file / "data"))), str(a_file))


def test_data_path_not_writable(unchanged):
    read_only = WORK / "ro"
    read_only.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here: %s" % mounted.stderr.decode().strip())
    try:
        bad = str(read_only / "data")
        assert_refused(run_module("registry_container", registry_args(data_path=bad)), bad, "not writable")
    finally:
        subprocess.run(["umount", str(read_only)], check=True)


def test_unknown_restart_policy_via_role(unchanged, tmp_path):
    result = run_role_failure(
        "registry",
        {"registry_container_name": NAME, "registry_port": PORT, "registry_data_path": str(WORK / "data"),
         "registry_restart_policy": "sometimes"},
        SHARED_DOCKER_HOST, tmp_path,
    )
    assert_refused(result, "sometimes")


def test_unknown_restart_policy_module(unchanged):
    assert_refused(run_module("registry_container", registry_args(restart_policy="sometimes")), "sometimes")


def test_registry_image_not_in_engine(unchanged):
    assert_refused(run_module("registry_container", registry_args(image=f"{REL}-absent:9")), f"{REL}-absent:9")


def test_unsupported_combinations(unchanged):
    assert_refused(
        run_module("registry_container", registry_args(restart_retries=3)), "restart_retries 3", "'always'"
    )
    assert_refused(
        run_module("registry_container", registry_args(volume=f"{REL}-vol")), "data_path", "volume"
    )
    assert_refused(
        run_module("image_provision", {"name": f"{REL}-good:1", "force_build": True}), "force_build", "build_path"
    )


def test_bind_mount_source_missing(unchanged):
    missing = str(WORK / "no-such-config")
    result = run_module("registry_container", registry_args(mounts=[{"source": missing, "target": "/auth"}]))
    assert_refused(result, missing)


def test_mount_target_that_is_the_data_mount_with_a_slash(unchanged):
    """/var/lib/registry/ is the data mount: refused before the running registry is stopped (the engine would refuse
    "duplicate mount point" only after the stop, then roll back)."""
    config = WORK / "config"
    config.mkdir(exist_ok=True)
    result = run_module(
        "registry_container", registry_args(mounts=[{"source": str(config), "target": "/var/lib/registry/"}])
    )
    assert_refused(result, "mount target /var/lib/registry is the data mount")


# -- values that name themselves ----------------------------------------------------------------
def _not_tagged(api, name: str) -> None:
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(name)


def test_registry_timeout_out_of_range_changes_nothing(unchanged, api):
    target = f"%s/{REL}/timeout:1" % ADDRESS
    for module, args in (
        ("image_publish", {"images": [{"source": f"{REL}-good:1", "targets": [target]}]}),
        ("image_push", {"name": GOOD}),
        ("image_sync", {"images": [{"src": GOOD, "dest": target}]}),
        ("registry_info", {"registry": ADDRESS}),
        ("registry_prune", {"registry": ADDRESS, "rules": [{"repository": ".*", "keep_last": 1}]}),
    ):
        assert_refused(run_module(module, dict(args, registry_timeout=-1)), "registry_timeout -1.0 must be a number of seconds more than 0")
    _not_tagged(api, target)


def test_ipv6_registry_refused_before_tagging(unchanged, api):
    target, fine = f"[::1]:%d/{REL}/v6:1" % PORT, f"%s/{REL}/v4:1" % ADDRESS
    result = run_module("image_publish", {"images": [{"source": f"{REL}-good:1", "targets": [fine, target]}]})
    assert_refused(result, "image %s: the Docker engine (before 25.0) cannot name an image after an IPv6 registry address" % target)
    _not_tagged(api, fine)  # the list's other target neither


def test_empty_targets_refused(unchanged):
    result = run_module("image_publish", {"images": [{"source": f"{REL}-good:1", "targets": []}]})
    assert_refused(result, f"image {REL}-good:1 has no targets")


def test_registry_gc_empty_name(unchanged):
    assert_refused(run_module("registry_gc", {"name": ""}), "name '' is not a container name")


def test_registry_tls_days_out_of_range_write_nothing(unchanged):
    tls_dir = WORK / "tls-days"
    for days, named in (({"ca_days": 100000000}, "ca_days 100000000 is out of range: give 31 to 36500"),
                        ({"days": -1}, "days -1 is out of range: give 31 to 36500")):
        assert_refused(run_module("registry_tls", dict({"directory": str(tls_dir), "names": ["localhost"]}, **days)), named)
    assert not tls_dir.exists()


# -- pushing ----------------------------------------------------------------------------------
def test_invalid_image_reference_pushes_nothing(unchanged):
    assert_refused(run_module("image_push", {"images": [NEW, "%s/Dh-Rel/UPPER:1" % ADDRESS]}), "Dh-Rel/UPPER")
    assert f"{REL}/new:1" not in tag_digests(ADDRESS)


def test_invalid_tag(unchanged):
    assert_refused(run_module("image_push", {"images": [NEW, f"%s/{REL}/good:-x" % ADDRESS]}), "-x")


def test_invalid_tag_via_role_builds_nothing(unchanged, tmp_path, api):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /x\n")
    result = run_role_failure(
        "publish",
        {"publish_registry": ADDRESS, "publish_builds": [{"name": f"{REL}-built:1", "src": str(context)}],
         "publish_images": [{"name": f"{REL}/new", "tag": "1"}, {"name": f"{REL}/good", "tag": "bad tag"}],
         "publish_build_dir": str(tmp_path / "build")},
        SHARED_DOCKER_HOST, tmp_path,
    )
    assert_refused(result, "bad tag")
    assert not api.images(name=f"{REL}-built"), "an image was built before the input was validated"


def test_missing_local_image_in_a_good_list_pushes_nothing(unchanged):
    ghost = f"%s/{REL}/ghost:1" % ADDRESS
    assert_refused(run_module("image_push", {"images": [NEW, ghost]}), ghost)
    assert f"{REL}/new:1" not in tag_digests(ADDRESS)


def test_registry_unreachable(unchanged, api):
    unreachable = f"localhost:%d/{REL}/good" % FREE_PORT
    api.tag(f"{REL}-good:1", unreachable, "1")
    assert_refused(run_module("image_push", {"images": [NEW, unreachable + ":1"]}), "localhost:%d" % FREE_PORT)
    assert f"{REL}/new:1" not in tag_digests(ADDRESS)


def test_registry_address_malformed(unchanged, tmp_path):
    assert_refused(run_module("image_push", {"name": f"localhost:99999/{REL}/good:1"}), "localhost:99999")
    result = run_role_failure(
        "publish",
        {"publish_registry": "http://%s" % ADDRESS, "publish_builds": [], "publish_images": [{"name": f"{REL}/new"}]},
        SHARED_DOCKER_HOST, tmp_path,
    )
    assert_refused(result, "http://%s" % ADDRESS)


def test_wrong_credentials_push_nothing(unchanged, api):
    auth = WORK / "auth"
    auth.mkdir(exist_ok=True)
    (auth / "htpasswd").write_text("alice:%s\n" % bcrypt.hashpw(b"right", bcrypt.gensalt(5)).decode())
    started = run_module(
        "registry_container",
        {"name": AUTH_NAME, "image": "registry:2", "port": AUTH_PORT, "data_path": str(WORK / "auth-data"),
         "env": {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": f"{REL}",
                 "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd"},
         "mounts": [{"source": str(auth), "target": "/auth", "read_only": True}]},
    )
    assert started.get("changed"), started
    target = f"localhost:%d/{REL}/good" % AUTH_PORT
    api.tag(f"{REL}-good:1", target, "1")
    result = run_module(
        "image_push", {"name": target + ":1", "username": "alice", "password": "wrong", "registry_scheme": "http"}
    )
    msg = assert_refused(result, "localhost:%d" % AUTH_PORT, "alice")
    assert "wrong" not in msg
    catalog = client("localhost:%d" % AUTH_PORT, username="alice", password="right").catalog()
    assert catalog == [], "something was pushed with refused credentials"


# -- provisioning -----------------------------------------------------------------------------
def test_provision_archive_missing(unchanged, api):
    archive = str(WORK / "no-such-archive.tar")
    result = run_module("image_provision", {"name": f"{REL}-absent:9", "pull": False, "archive": archive})
    assert_refused(result, archive)
    assert not api.images(name=f"{REL}-absent")


def test_recreate_that_cannot_start_rolls_back(api, registry):
    """A change that needs a recreate, with a value the registry cannot start with: the old container
    (same ID, same data) is put back and runs; the error names the bad value."""
    before = api.inspect_container(NAME)
    contents = tag_digests(ADDRESS)
    result = run_module("registry_container", registry_args(env={"REGISTRY_HTTP_ADDR": "no-such-host:99999"}))
    assert_refused(result, "kept")
    after = api.inspect_container(NAME)
    assert after["Id"] == before["Id"] and after["State"]["Running"]
    assert not any(c["Names"][0] == "/%s-dockhand-old" % NAME for c in api.containers(all=True))
    wait_v2(ADDRESS, timeout=10)
    assert tag_digests(ADDRESS) == contents
    again = run_module("registry_container", registry_args())
    assert not again.get("failed") and not again["changed"], again
