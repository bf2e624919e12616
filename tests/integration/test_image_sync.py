"""image_sync and the pull-through cache against real registry containers.

Registries on ports +25..+28 of the run's range (source, destination, upstream, cache). Images are built in the registries through
the API (tests/support/registry_api.py): no engine, except for the cache test, which pulls with the engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.dockhand.registry.tests.support import registry_api as api
from support import ROOT, oracle
from support.isolation import PREFIX, REGISTRY_IMAGE, port
from support.oracle import assert_same_tag
from support.registry import client, wait_v2
from support.runner import ansible_env, recap, run_playbook
from support.secrets import find

from .conftest import docker

SRC_PORT, DEST_PORT, UPSTREAM_PORT, CACHE_PORT = port(25), port(26), port(27), port(28)
# registry_proxies: a second upstream, and the two caches of the two upstreams
UPSTREAM_B_PORT, CACHE_A_PORT, CACHE_B_PORT = port(29), port(31), port(32)
SRC, DEST = "localhost:%d" % SRC_PORT, "localhost:%d" % DEST_PORT
RSS_LIMIT_KIB = 100 * 1024


def start_registry(name: str, port: int, data: Path) -> str:
    data.mkdir(parents=True, exist_ok=True)
    docker("rm", "-f", PREFIX + name, check=False)
    docker("run", "-d", "--name", PREFIX + name, "-p", "127.0.0.1:%d:5000" % port, "-v", "%s:/var/lib/registry" % data, REGISTRY_IMAGE)
    wait_v2("127.0.0.1:%d" % port)
    return PREFIX + name


def run_sync(workdir: Path, args: dict, check_mode: bool = False, python: str | None = None, env: dict | None = None,
             log: list | None = None) -> dict:
    """One image_sync task through ansible-playbook; its registered result (failed runs too). With ``log``, run with
    ``-vvv`` and append the whole output to it."""
    out = workdir / "result.json"
    out.unlink(missing_ok=True)
    playbook = workdir / "sync.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "dockhand.registry.image_sync": "{{ sync_args }}",
                            "check_mode": check_mode,
                            "diff": True,
                            "register": "r",
                            "ignore_errors": True,
                        },
                        {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out), "mode": "0600"}, "check_mode": False},
                    ],
                }
            ]
        )
    )
    extra: dict = {"sync_args": args}
    if python:
        extra["ansible_python_interpreter"] = python
    done = run_playbook(playbook, extra, env=ansible_env(**(env or {})), timeout=300, args=("-vvv",) if log is not None else ())
    if log is not None:
        log.append(done.stdout + done.stderr)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def raw(reference: str) -> bytes:
    return subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + reference], capture_output=True, check=True
    ).stdout


@pytest.fixture
def two_registries(workdir):
    start_registry("sync-src", SRC_PORT, workdir / "src")
    start_registry("sync-dest", DEST_PORT, workdir / "dest")
    return workdir


def test_index_copy_is_digest_true_and_idempotent(two_registries, dh_vars):
    workdir = two_registries
    repo = PREFIX + "multi"
    source_digest = api.push_index(SRC, repo, "1.0", dh_vars["dh_marker"])
    args = {"src_repository": "%s/%s" % (SRC, repo), "dest_repository": "%s/mirror/%s" % (DEST, repo), "tags": ["1.0"]}

    before = client(DEST).snapshot(), client(SRC).snapshot()
    check = run_sync(workdir, args, check_mode=True)
    assert check["changed"] and check["synced"] == ["%s/mirror/%s:1.0" % (DEST, repo)], check
    assert check["actions"][0].startswith("would copy"), check
    assert client(DEST).digest("mirror/" + repo, "1.0") is None, "check mode wrote to the destination"
    assert (client(DEST).snapshot(), client(SRC).snapshot()) == before, "check mode changed a registry"

    first = run_sync(workdir, args)
    assert first["changed"] and not first.get("failed"), first
    item = first["images"][0]
    assert item["digest"] == source_digest == item["source_digest"] and item["digest_preserved"], item
    assert item["platforms"] == ["linux/amd64", "linux/arm64"], item
    assert item["blobs"]["copied"] == 4, item  # two configs + two layers
    assert first["diff"]["before"].strip().endswith("(absent)") and source_digest in first["diff"]["after"], first
    assert client(DEST).digest("mirror/" + repo, "1.0") == source_digest
    assert raw("%s/%s:1.0" % (SRC, repo)) == raw("%s/mirror/%s:1.0" % (DEST, repo)), "skopeo inspect --raw differs"
    # The index, both children and all four blobs, downloaded from the destination and digest-checked.
    whole = assert_same_tag(client(SRC), client(DEST), repo, "1.0", "mirror/" + repo)
    assert len(whole.manifests) == 3 and len(whole.blobs) == 4, whole.digests()

    again = run_sync(workdir, args)
    assert not again["changed"] and again["images"][0]["action"] == "present", again

    moved = api.push_index(SRC, repo, "1.0", dh_vars["dh_marker"] + "-moved")
    assert moved != source_digest
    third = run_sync(workdir, args)
    assert third["changed"] and third["images"][0]["digest"] == moved and third["images"][0]["digest_before"] == source_digest, third
    assert client(DEST).digest("mirror/" + repo, "1.0") == moved
    assert raw("%s/%s:1.0" % (SRC, repo)) == raw("%s/mirror/%s:1.0" % (DEST, repo))
    assert_same_tag(client(SRC), client(DEST), repo, "1.0", "mirror/" + repo)
    assert not run_sync(workdir, args)["changed"]


def test_pattern_platforms_mounts_and_failures(two_registries, dh_vars):
    workdir = two_registries
    repo = PREFIX + "many"
    digests = api.push_images(SRC, repo, 5, dh_vars["dh_marker"])
    api.push_index(SRC, repo, "multi", dh_vars["dh_marker"])

    bad = run_sync(workdir, {"src_repository": "%s/%s" % (SRC, repo), "dest_repository": "%s/%s" % (DEST, repo), "tag_pattern": "t(0"})
    assert bad.get("failed") and "invalid tag_pattern 't(0'" in bad["msg"] and "\n" not in bad["msg"], bad

    args = {"src_repository": "%s/%s" % (SRC, repo), "dest_repository": "%s/%s" % (DEST, repo), "tag_pattern": "t00[0-3]", "workers": 3}
    first = run_sync(workdir, args)
    assert [i["dest"] for i in first["images"]] == ["%s/%s:t00%d" % (DEST, repo, n) for n in range(4)], first
    assert [i["digest"] for i in first["images"]] == digests[:4]
    for number in range(4):
        assert_same_tag(client(SRC), client(DEST), repo, "t00%d" % number)
    assert not run_sync(workdir, args)["changed"]

    # Same registry, another repository: blobs are mounted, not copied; only one platform: a new index.
    arm = run_sync(
        workdir,
        {"images": [{"src": "%s/%s:multi" % (DEST, repo), "dest": "%s/%sarm:1" % (DEST, PREFIX)}], "platforms": ["linux/arm64"]},
    )
    # The index is not at the destination yet: copy it first.
    assert arm.get("failed") and "is not in the registry" in arm["msg"], arm
    run_sync(workdir, {"images": [{"src": "%s/%s:multi" % (SRC, repo), "dest": "%s/%s:multi" % (DEST, repo)}]})
    arm = run_sync(
        workdir,
        {"images": [{"src": "%s/%s:multi" % (DEST, repo), "dest": "%s/%sarm:1" % (DEST, PREFIX)}], "platforms": ["linux/arm64"]},
    )
    item = arm["images"][0]
    assert arm["changed"] and not item["digest_preserved"] and item["platforms"] == ["linux/arm64"], arm
    assert item["blobs"] == {"copied": 0, "mounted": 2, "present": 0}, item
    assert json.loads(raw("%s/%sarm:1" % (DEST, PREFIX)))["manifests"][0]["platform"]["architecture"] == "arm64"
    subset = client(DEST).verify_tag_whole(PREFIX + "arm", "1", digest=item["digest"])
    assert len(subset.manifests) == 2 and len(subset.blobs) == 2, subset.digests()

    # A missing tag fails alone; the other tag of the list is copied and reported.
    mixed = run_sync(
        workdir,
        {
            "images": [
                {"src": "%s/%s:t004" % (SRC, repo), "dest": "%s/%s:t004" % (DEST, repo)},
                {"src": "%s/%s:nope" % (SRC, repo), "dest": "%s/%s:nope" % (DEST, repo)},
            ]
        },
    )
    assert mixed.get("failed") and "1 of 2 tags" in mixed["msg"] and ":nope" in mixed["msg"], mixed
    assert mixed["results"][0]["changed"] and mixed["results"][1]["failed"], mixed
    assert client(DEST).digest(repo, "t004") == digests[4]


def test_big_layer_streams_in_bounded_memory(two_registries):
    workdir = two_registries
    layer = api.big_layer(workdir / "layer", 256)
    digest = api.push_image(SRC, PREFIX + "big", "1", [layer])["digest"]
    log = workdir / "rss.log"
    result = run_sync(
        workdir,
        {"images": [{"src": "%s/%sbig:1" % (SRC, PREFIX), "dest": "%s/%sbig:1" % (DEST, PREFIX)}]},
        python=str(ROOT / "bench" / "python-rss"),
        env={"DH_BENCH_RSS_LOG": str(log), "DH_BENCH_PYTHON": str(ROOT / ".venv" / "bin" / "python")},
    )
    assert result["changed"] and result["images"][0]["digest"] == digest, result
    assert result["images"][0]["bytes_copied"] >= 256 << 20
    # The 256 MiB layer read back from the destination by the oracle (streamed) and digest-checked.
    copied = assert_same_tag(client(SRC), client(DEST), PREFIX + "big", "1")
    assert copied.blob_bytes >= 256 << 20, copied.blob_bytes
    # One line per module process, in task order (pipelining: no file name on the command line): the first is image_sync.
    peak = int(log.read_text().splitlines()[0].split()[0])
    print("image_sync peak RSS for a 256 MiB layer: %.1f MiB" % (peak / 1024))
    assert peak < RSS_LIMIT_KIB, "peak RSS %d KiB" % peak
    shutil.rmtree(workdir / "layer", ignore_errors=True)


def test_pull_through_cache(workdir, dh_vars):
    upstream = start_registry("upstream", UPSTREAM_PORT, workdir / "upstream")
    address = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", upstream).strip()
    repo = PREFIX + "cached"
    digest = api.push_images("localhost:%d" % UPSTREAM_PORT, repo, 1, dh_vars["dh_marker"])[0]
    cache_vars = {
        "registry_container_name": PREFIX + "cache",
        "registry_image": REGISTRY_IMAGE,
        "registry_image_pull": False,
        "registry_port": CACHE_PORT,
        "registry_data_path": str(workdir / "cache"),
        "registry_proxy": {"url": "http://%s:5000" % address, "username": "mirror", "password": "s3cret-" + dh_vars["dh_marker"]},
        "registry_proxy_config": str(workdir / "etc" / "config.yml"),
        "registry_wait_timeout": 30,
    }
    play = workdir / "cache.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "roles": [{"role": "dockhand.registry.registry"}],
                }
            ]
        )
    )
    bad = run_playbook(play, dict(cache_vars, registry_proxy={"url": "%s:5000" % address}))
    assert bad.returncode != 0 and 'registry_proxy.url "%s:5000" is not a registry URL' % address in bad.stdout, bad.stdout[-2000:]
    assert not docker("ps", "-aq", "--filter", "name=^/%scache$" % PREFIX).strip(), "a bad registry_proxy created the cache"

    done = run_playbook(play, cache_vars)
    assert done.returncode == 0 and recap(done.stdout)["changed"] > 0, done.stdout[-3000:]
    done = run_playbook(play, cache_vars, args=("-vvv",))
    assert done.returncode == 0 and recap(done.stdout)["changed"] == 0, done.stdout[-3000:]
    assert "s3cret" not in done.stdout and "s3cret" not in docker("inspect", PREFIX + "cache")
    assert find({"registry_proxy.password": cache_vars["registry_proxy"]["password"]}, done.stdout + done.stderr) == []
    assert oct((workdir / "etc" / "config.yml").stat().st_mode & 0o777) == "0o600"

    cached = "localhost:%d/%s" % (CACHE_PORT, repo)
    docker("pull", cached + ":t000")
    assert digest in docker("image", "inspect", "-f", "{{json .RepoDigests}}", cached + ":t000")
    # Publishing to the cache is refused with one line, before anything is built or pushed.
    publish = workdir / "publish.yml"
    publish.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "dockhand.registry.publish"}]}]))
    done = run_playbook(
        publish,
        dict(cache_vars, publish_registry="localhost:%d" % CACHE_PORT, publish_images=[{"name": repo, "tag": "t000"}]),
    )
    assert done.returncode != 0
    assert "is a pull-through cache of http://%s:5000 (registry_proxy): a cache refuses pushes" % address in done.stdout, done.stdout[-2000:]

    # image_sync into the cache: one line naming the cache.
    result = run_sync(workdir, {"images": [{"src": "%s:t000" % cached, "dest": "localhost:%d/%sother:1" % (CACHE_PORT, PREFIX)}]})
    assert result.get("failed") and "pull-through cache" in result["msg"] and "\n" not in result["msg"], result

    # registry_proxies: two more caches on this host, of two upstreams (the same one, and a second), each with its own
    # configuration file and data directory; each pull served, and served again with its upstream stopped. The engine
    # holds none of the layers first (each cache then fetches and keeps them).
    docker("rmi", "-f", cached + ":t000")
    upstream_b = start_registry("upstream-b", UPSTREAM_B_PORT, workdir / "upstream-b")
    address_b = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", upstream_b).strip()
    digest_b = api.push_images("localhost:%d" % UPSTREAM_B_PORT, repo + "b", 1, dh_vars["dh_marker"] + "b")[0]
    secret_b = "s3cret-b-" + dh_vars["dh_marker"]
    caches = [
        {"name": PREFIX + "cache-a", "url": "http://%s:5000" % address, "port": CACHE_A_PORT},
        {"name": PREFIX + "cache-b", "url": "http://%s:5000" % address_b, "port": CACHE_B_PORT, "username": "m", "password": secret_b},
    ]
    proxies_vars = dict(cache_vars, registry_proxies=caches, registry_proxies_config_dir=str(workdir / "etc"),
                        registry_proxies_data_root=str(workdir / "caches"))  # fmt: skip
    bad = run_playbook(play, dict(proxies_vars, registry_proxies=[dict(caches[0]), dict(caches[1], port=CACHE_A_PORT)]))
    assert bad.returncode != 0 and "registry_proxies ports %d, %d must differ" % (CACHE_A_PORT, CACHE_A_PORT) in bad.stdout, bad.stdout[-2000:]
    assert not docker("ps", "-aq", "--filter", "name=^/%scache-" % PREFIX).strip(), "a refused registry_proxies started a cache"
    done = run_playbook(play, proxies_vars)
    assert done.returncode == 0 and recap(done.stdout)["changed"] > 0, done.stdout[-3000:]
    done = run_playbook(play, proxies_vars, args=("-vvv",))
    assert done.returncode == 0 and recap(done.stdout)["changed"] == 0, done.stdout[-3000:]
    assert find({"registry_proxies.password": secret_b}, done.stdout + done.stderr) == []
    assert secret_b not in docker("inspect", PREFIX + "cache-b") and secret_b in (workdir / "etc" / (PREFIX + "cache-b.yml")).read_text()
    assert sorted(path.name for path in (workdir / "caches").iterdir()) == [PREFIX + "cache-a", PREFIX + "cache-b"]
    pulled = {"localhost:%d/%s" % (CACHE_A_PORT, repo): digest, "localhost:%d/%sb" % (CACHE_B_PORT, repo): digest_b}
    for name, expected in pulled.items():
        docker("pull", name + ":t000")
        assert expected in docker("image", "inspect", "-f", "{{json .RepoDigests}}", name + ":t000")
        docker("rmi", "-f", name + ":t000")
    assert oracle.Registry("localhost:%d" % CACHE_B_PORT).digest(repo + "b", "t000") == digest_b

    docker("stop", upstream, upstream_b)
    docker("pull", "%s@%s" % (cached, digest))  # upstream down: served from the cache
    docker("rmi", "-f", "%s@%s" % (cached, digest), check=False)
    for name, expected in pulled.items():  # both upstreams down: each cache serves what it holds
        docker("pull", "%s@%s" % (name, expected))
        docker("rmi", "-f", "%s@%s" % (name, expected), check=False)


def test_publish_role_sync_list(two_registries, dh_vars):
    """The publish role's publish_sync promotes between registries: changed, then changed=0."""
    workdir = two_registries
    repo = PREFIX + "promote"
    digest = api.push_index(SRC, repo, "2.0", dh_vars["dh_marker"])
    play = workdir / "promote.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "dockhand.registry.publish"}]}]))
    role_vars = {
        "publish_registry": DEST,
        "publish_images": [],
        "publish_builds": [],
        "publish_sync": [{"src_repository": "%s/%s" % (SRC, repo), "dest_repository": "%s/prod/%s" % (DEST, repo), "tags": ["2.0"]}],
    }
    first = run_playbook(play, role_vars)
    assert first.returncode == 0 and recap(first.stdout)["changed"] == 1, first.stdout[-3000:]
    assert client(DEST).digest("prod/" + repo, "2.0") == digest
    assert_same_tag(client(SRC), client(DEST), repo, "2.0", "prod/" + repo)
    again = run_playbook(play, role_vars)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_credentials_on_each_side(workdir, dh_vars):
    """Source and destination with their own htpasswd users: each side logs in with its own credentials."""
    import bcrypt

    users = {"src": ("alice", "src-pw-" + dh_vars["dh_marker"]), "dest": ("bob", "dest-pw-" + dh_vars["dh_marker"])}
    for side, side_port in (("src", SRC_PORT), ("dest", DEST_PORT)):
        user, password = users[side]
        auth = workdir / ("auth-" + side)
        auth.mkdir()
        (auth / "htpasswd").write_text("%s:%s\n" % (user, bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()))
        docker("rm", "-f", PREFIX + "auth-" + side, check=False)
        docker(
            "run", "-d", "--name", PREFIX + "auth-" + side, "-p", "127.0.0.1:%d:5000" % side_port,
            "-v", "%s:/auth:ro" % auth, "-e", "REGISTRY_AUTH=htpasswd", "-e", "REGISTRY_AUTH_HTPASSWD_REALM=test",
            "-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd", REGISTRY_IMAGE,
        )
        wait_up_any(side_port)
    repo = PREFIX + "authed"
    api.SESSION.auth = users["src"]
    try:
        digest = api.push_images(SRC, repo, 1, dh_vars["dh_marker"])[0]
    finally:
        api.SESSION.auth = None
    args = {
        "images": [{"src": "%s/%s:t000" % (SRC, repo), "dest": "%s/%s:t000" % (DEST, repo)}],
        "src_username": users["src"][0], "src_password": users["src"][1],
        "dest_username": users["dest"][0], "dest_password": "wrong",
        # Both registries are plain HTTP: a password goes over it only when the scheme says so.
        "src_registry_scheme": "http", "dest_registry_scheme": "http",
    }
    refused = run_sync(workdir, args)
    assert refused.get("failed") and "registry %s refused the login of user 'bob'" % DEST in refused["msg"], refused
    assert client(DEST, username=users["dest"][0], password=users["dest"][1]).digest(repo, "t000") is None
    args["dest_password"] = users["dest"][1]
    verbose: list = []
    done = run_sync(workdir, args, log=verbose)
    # Neither password in the -vvv output, in any form (literal, base64, URL-encoded).
    assert find({"src_password": users["src"][1], "dest_password": users["dest"][1]}, verbose[0]) == []
    assert done["changed"] and done["images"][0]["digest"] == digest, done
    assert_same_tag(client(SRC, username=users["src"][0], password=users["src"][1]),
                    client(DEST, username=users["dest"][0], password=users["dest"][1]), repo, "t000")  # fmt: skip
    assert users["src"][1] not in json.dumps(done) and users["dest"][1] not in json.dumps(done)
    assert not run_sync(workdir, args)["changed"]


def wait_up_any(port: int) -> None:
    """Up when /v2/ answers at all (401 with auth on)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/v2/" % port, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_tls_destination_with_its_own_ca(workdir, dh_vars):
    """A plain-HTTP source and a TLS destination with a private CA: dest_registry_ca_cert, and a one-line refusal without."""
    start_registry("sync-src", SRC_PORT, workdir / "src")
    certs = workdir / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt")],
        check=True, capture_output=True,
    )
    docker("rm", "-f", PREFIX + "sync-tls", check=False)
    docker(
        "run", "-d", "--name", PREFIX + "sync-tls", "-p", "127.0.0.1:%d:5000" % DEST_PORT, "-v", "%s:/certs:ro" % certs,
        "-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/server.crt", "-e", "REGISTRY_HTTP_TLS_KEY=/certs/server.key", REGISTRY_IMAGE,
    )
    deadline = time.monotonic() + 30
    while subprocess.run(["curl", "-sf", "--cacert", str(certs / "server.crt"), "https://localhost:%d/v2/" % DEST_PORT],
                         capture_output=True, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the TLS registry did not start"
        time.sleep(0.3)
    repo = PREFIX + "tls"
    digest = api.push_index(SRC, repo, "1", dh_vars["dh_marker"])
    args = {"images": [{"src": "%s/%s:1" % (SRC, repo), "dest": "%s/%s:1" % (DEST, repo)}], "dest_registry_scheme": "https"}
    refused = run_sync(workdir, args)
    assert refused.get("failed") and "certificate" in refused["msg"].lower() and "\n" not in refused["msg"], refused
    args["dest_registry_ca_cert"] = str(certs / "server.crt")
    done = run_sync(workdir, args)
    assert done["changed"] and done["images"][0]["digest"] == digest, done
    assert_same_tag(client(SRC), client(DEST, scheme="https", cafile=str(certs / "server.crt")), repo, "1")
    assert not run_sync(workdir, args)["changed"]


RELEASES = ["1.0.0", "1.2.0", "1.2.5", "1.3.0-rc1", "v1.4.1", "2.0.0", "2.1.0-beta.2", "latest", "1.2-alpine", "nightly", "edge"]


def requests_seen(container: str, since: int) -> list[str]:
    """The registry's access-log lines ("METHOD /path") after the first ``since`` of them."""
    done = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=True)
    lines = [line.split('"')[1] for line in (done.stdout + done.stderr).splitlines() if '" ' in line and " HTTP/1.1" in line]
    return [" ".join(line.split()[:2]) for line in lines[since:]]


def test_semver_range_and_limit_pick_exactly_the_expected_tags(two_registries, dh_vars):
    """A source holding releases, pre-releases and other tags: tag_semver copies exactly the releases in range (read
    back by the oracle, byte for byte), tag_limit the newest of them; a new repository gets no HEAD at all."""
    workdir = two_registries
    repo = PREFIX + "releases"
    base = api.tar_layer("base", "base %s\n" % dh_vars["dh_marker"])
    for tag in RELEASES:
        api.push_image(SRC, repo, tag, [base, api.tar_layer("file", "%s %s\n" % (tag, dh_vars["dh_marker"]))])
    args = {"src_repository": "%s/%s" % (SRC, repo), "dest_repository": "%s/semver/%s" % (DEST, repo), "tag_semver": ">=1.2,<3"}
    seen = len(requests_seen(PREFIX + "sync-dest", 0))

    first = run_sync(workdir, args)
    expected = ["1.2.0", "1.2.5", "v1.4.1", "2.0.0"]  # version order; no pre-release, no "latest", "1.2-alpine"...
    assert first["changed"] and [i["dest"].rsplit(":", 1)[1] for i in first["images"]] == expected, first
    assert first["tag_selection"] == {"listed": 11, "not_matching_pattern": 0, "not_versions": 4, "outside_range": 3, "chosen": 4}
    source, dest = oracle.Registry(SRC), oracle.Registry(DEST)
    assert sorted(dest.tags("semver/" + repo)) == sorted(expected)
    for tag in expected:
        oracle.assert_same_tag(source, dest, repo, tag, "semver/" + repo)
    asked = requests_seen(PREFIX + "sync-dest", seen)
    assert not [r for r in asked if r.startswith("HEAD")], asked  # the repository was new: nothing to ask
    assert len([r for r in asked if r.startswith("PUT") and "/manifests/" in r]) == 4
    assert len([r for r in asked if r.startswith("POST")]) == 9  # four configs, four own layers, the shared base once
    assert not run_sync(workdir, args)["changed"]

    limited = run_sync(workdir, dict(args, dest_repository="%s/newest/%s" % (DEST, repo), tag_limit=2))
    assert [i["dest"].rsplit(":", 1)[1] for i in limited["images"]] == ["v1.4.1", "2.0.0"], limited
    assert limited["tag_selection"]["over_limit"] == 2
    assert sorted(dest.tags("newest/" + repo)) == ["2.0.0", "v1.4.1"]


def test_engines_take_the_docker_hub_cache_as_registry_mirror(workdir):
    """The engine role's mirrors entry point (what site.yml runs with the registry host's Docker Hub cache) merges the
    cache into registry-mirrors with the mirrors and keys already there; applied with apply none (the shared engine
    is not reloaded); a second run changes nothing."""
    daemon_json = workdir / "daemon.json"
    daemon_json.write_text(json.dumps({"log-driver": "json-file", "registry-mirrors": ["https://mirror.example.org"]}))
    play = workdir / "mirrors.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "ansible.builtin.include_role": {"name": "dockhand.registry.engine", "tasks_from": "mirrors"},
        "vars": {"engine_daemon_json": str(daemon_json), "engine_daemon_apply": "none",
                 "engine_registry_mirrors": ["https://mirror.example.org"],
                 "engine_registry_hub_cache": "http://localhost:%d" % CACHE_A_PORT}}]}]))  # fmt: skip
    for changed in (1, 0):
        done = run_playbook(play, {})
        assert done.returncode == 0 and recap(done.stdout)["changed"] == changed, done.stdout[-3000:]
    assert json.loads(daemon_json.read_text()) == {
        "log-driver": "json-file", "registry-mirrors": ["https://mirror.example.org", "http://localhost:%d" % CACHE_A_PORT]}
