"""Container and registry-client parts of the secure registry: config digest, exposure warnings, CA use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import (
    CONFIG_LABEL,
    RegistrySpec,
    config_digest,
    current_view,
    desired_view,
    exposure_warnings,
)
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient

IMAGE = {"Id": "sha256:" + "1" * 64, "Config": {"Env": ["PATH=/bin"]}}


def _container(labels):
    return {
        "Id": "c" * 64,
        "Name": "/registry",
        "Image": IMAGE["Id"],
        "Config": {"Image": "registry:2", "Env": ["PATH=/bin"], "Labels": labels},
        "HostConfig": {
            "PortBindings": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5000"}]},
            "RestartPolicy": {"Name": "always"},
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
        },
        "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/var/lib/registry", "RW": True}],
        "State": {"Running": True},
    }


@pytest.mark.parametrize(
    "wanted, labels, differs",
    [
        ("", {}, False),
        ("", {"io.dockhand.registry.managed": "true"}, False),
        ("abc", {CONFIG_LABEL: "WANTED"}, False),
        ("abc", {CONFIG_LABEL: "def"}, True),
        ("abc", {}, True),
        ("", {CONFIG_LABEL: "abc"}, True),
    ],
)
def test_config_digest_compared_like_env(wanted, labels, differs):
    spec = RegistrySpec(name="registry", image="registry:2", volume="data", config_digest=wanted)
    # The label holds the digest the module computes (over the user's value and the mounted files).
    labels = {k: (config_digest(spec) if v == "WANTED" else v) for k, v in labels.items()}
    want = desired_view(spec, IMAGE)
    have = current_view(_container(labels), {"PATH": "/bin"})
    assert (want["config_digest"] != have["config_digest"]) is differs
    differing = {k for k in want if k not in ("state", "image") and want[k] != have[k]}
    assert differing == ({"config_digest"} if differs else set())


@pytest.mark.parametrize(
    "bind, env, count",
    [
        ("127.0.0.1", {}, 0),
        ("::1", {}, 0),
        ("0.0.0.0", {}, 2),
        ("192.0.2.2", {"REGISTRY_AUTH": "htpasswd"}, 1),
        ("192.0.2.2", {"REGISTRY_HTTP_TLS_CERTIFICATE": "/certs/server.crt"}, 1),
        ("192.0.2.2", {"REGISTRY_AUTH": "htpasswd", "REGISTRY_HTTP_TLS_CERTIFICATE": "/certs/server.crt"}, 0),
    ],
)
def test_exposure_warnings(bind, env, count):
    spec = RegistrySpec(name="r", image="registry:2", volume="data", bind_address=bind, env=env)
    warnings = exposure_warnings(spec)
    assert len(warnings) == count
    assert all("beyond loopback" in w and bind in w for w in warnings)
    spec.state = "absent"
    assert exposure_warnings(spec) == []


def test_ca_cert_is_sent_with_every_request(monkeypatch, tmp_path):
    """REQUESTS_CA_BUNDLE must not override the CA given: verify goes with each request."""
    ca = tmp_path / "ca.crt"
    ca.write_text("CA")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = mock.Mock()
    session.headers = {}
    session.request.return_value = mock.Mock(status_code=200, headers={}, text="")
    client = RegistryClient("registry.example.com:5000", ca_cert=str(ca), scheme="https", session=session)
    client.ping()
    assert session.request.call_args.kwargs["verify"] == str(ca)


def test_https_registry_with_unknown_ca_is_not_taken_for_http():
    import requests

    session = mock.Mock()
    session.headers = {}
    https_error = requests.exceptions.SSLError("certificate verify failed: unable to get local issuer certificate")
    tls_answer = mock.Mock(status_code=400, text="Client sent an HTTP request to an HTTPS server.\n")
    session.get.side_effect = [https_error, tls_answer]
    client = RegistryClient("registry.example.com:5000", session=session)
    with pytest.raises(Exception, match="certificate verify failed"):
        client.ping()


def test_find_secrets_script(tmp_path):
    script = Path(__file__).resolve().parents[4] / "molecule" / "secure" / "files" / "find_secrets.py"
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("pw_a: Ab3dEf6hIj9kLm2nOp5qRs8t\npw_b: Zy1xWv4uTs7rQp0oNm3lKj6i\n")
    log = tmp_path / "log"
    log.write_text("ok: [host] => {\"password\": \"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER\"}\n")
    clean = subprocess.run([sys.executable, str(script), str(secrets), str(log)], capture_output=True, text=True, check=False)
    assert clean.returncode == 0 and "none of 2 passwords found" in clean.stdout
    log.write_text("changed: [host] => {\"msg\": \"login Zy1xWv4uTs7rQp0oNm3lKj6i\"}\n")
    leaked = subprocess.run([sys.executable, str(script), str(secrets), str(log)], capture_output=True, text=True, check=False)
    assert leaked.returncode == 1 and "pw_b" in leaked.stdout and "Zy1x" not in leaked.stdout
    log.write_text("")
    assert subprocess.run([sys.executable, str(script), str(secrets), str(log)], check=False).returncode == 2
