"""The engine options reach a remote engine over TLS, as community.docker's do.

A private dockerd (own socket, data root, exec root, pidfile, bridge; see support.engine) listens on
``tcp://127.0.0.1:<port of the run's range>`` with ``--tlsverify`` and a CA made for the run. The shared engine is
never touched. Proves: module_defaults on the action group (files/engine_tls.yml), the DOCKER_HOST /
DOCKER_TLS_VERIFY / DOCKER_CERT_PATH environment, and one-line refusals without the client certificate or with
the wrong CA.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from support.engine import PrivateEngine, make_tls_files
from support.isolation import PREFIX, bridge, name, path, port, subnet
from support.runner import recap, run_module, run_playbook

PLAYBOOK = Path(__file__).parent / "files" / "engine_tls.yml"
IMAGE = name("tls-app")
NOWHERE = "unix:///nonexistent/docker.sock"


@pytest.fixture(scope="module")
def engine():
    reason = PrivateEngine.available()
    if reason:
        pytest.skip(reason)
    base = path("tls-engine")
    shutil.rmtree(base, ignore_errors=True)
    private = PrivateEngine(
        base,
        run_dir=Path("/run") / (PREFIX + "tls-engine"),
        bridge=bridge("tls"),
        subnet=subnet(1),
        tls_port=port(40),
    )
    private.destroy()  # leftovers of an interrupted run
    private.start()
    try:
        yield private
    finally:
        private.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_module_defaults_on_the_action_group(engine):
    workdir = path("tls-play-%s" % uuid.uuid4().hex[:6])
    (workdir / "ctx").mkdir(parents=True)
    try:
        variables = {
            "dh_engine": engine.tcp_host,
            "dh_tls": str(engine.base / "tls"),
            "dh_dir": str(workdir),
            "dh_image": IMAGE,
            "dh_marker": uuid.uuid4().hex,
        }
        proc = run_playbook(PLAYBOOK, variables, docker_host=NOWHERE)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert recap(proc.stdout)["failed"] == 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    api = engine.api()
    assert api.inspect_image("localhost:5000/%s:1" % IMAGE)["Id"] == api.inspect_image("%s:1" % IMAGE)["Id"]


def test_docker_environment(engine, monkeypatch):
    # DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, as the docker CLI takes them; no option given.
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(engine.base / "tls"))
    args = {"source": "%s:1" % IMAGE, "targets": ["%s:env" % IMAGE]}
    first = run_module("image_tag", args, docker_host=engine.tcp_host)
    assert first.get("changed") is True, first
    again = run_module("image_tag", args, docker_host=engine.tcp_host)
    assert again.get("changed") is False and not again.get("failed"), again


def _tag(engine: PrivateEngine, **options: object) -> dict:
    args = {"source": "%s:1" % IMAGE, "targets": ["%s:never" % IMAGE], "docker_host": engine.tcp_host, **options}
    return run_module("image_tag", args, docker_host=NOWHERE)


def test_without_client_certificate_refused(engine):
    result = _tag(engine, validate_certs=True, ca_path=str(engine.base / "tls" / "ca.pem"))
    assert result.get("failed") and not result.get("crashed"), result
    assert "\n" not in result["msg"]


def test_wrong_ca_refused(engine, tmp_path):
    other = make_tls_files(tmp_path / "other")
    tls = engine.base / "tls"
    result = _tag(engine, validate_certs=True, ca_path=str(other["ca"]), client_cert=str(tls / "cert.pem"), client_key=str(tls / "key.pem"))
    assert result.get("failed") and not result.get("crashed"), result
    assert "\n" not in result["msg"]


def test_plain_tcp_refused(engine):
    result = _tag(engine)
    assert result.get("failed") and not result.get("crashed"), result
    assert "\n" not in result["msg"]


def test_half_client_certificate_named(engine):
    result = _tag(engine, tls=True, client_cert=str(engine.base / "tls" / "cert.pem"))
    assert result["msg"] == "client_cert and client_key go together: got only client_cert", result


def test_refusals_change_nothing(engine):
    # Runs after the refusals (file order): none of them tagged anything.
    assert not engine.api().images(name="%s:never" % IMAGE)
