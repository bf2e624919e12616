"""The registry role validates everything before anything changes, and its no_log tasks still show their one-line
errors: bad input is refused in one line before it writes htpasswd, CA, certificate or certs.d trust.

Names from DH_PREFIX / DH_DATA_ROOT (tests/integration/README.md); no container is created.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.engine import SHARED_DOCKER_HOST
from support.isolation import DATA_ROOT, PREFIX

from .reliability_support import run_role_failure

ROOT = DATA_ROOT / "role-validation"
TLS_NAME = "%svalidate.invalid" % PREFIX


@pytest.fixture
def work():
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    yield ROOT
    shutil.rmtree(ROOT, ignore_errors=True)


def _role_vars(work: Path, **overrides) -> dict:
    values = {
        "registry_container_name": PREFIX + "validate",
        "registry_data_path": str(work / "data"),
        "registry_auth_htpasswd": str(work / "auth" / "htpasswd"),
        "registry_auth_users": [{"name": "alice", "password": "pw-%s-secret" % PREFIX}],
        "registry_tls_generate": True,
        "registry_tls_names": [TLS_NAME],
        "registry_tls_dir": str(work / "tls"),
        "registry_image_pull": False,
        "registry_image_build": False,
    }
    values.update(overrides)
    return values


def _nothing_written(work: Path, port: object) -> None:
    assert not (work / "auth").exists(), "htpasswd written before the input was checked"
    assert not (work / "tls").exists(), "CA or certificate written before the input was checked"
    assert not (work / "data").exists(), "data directory created before the input was checked"
    assert not Path("/etc/docker/certs.d/%s:%s" % (TLS_NAME, port)).exists(), "certs.d trust written"


def _one_line(result: dict, *values: str) -> str:
    assert result.get("failed"), result
    msg = result["msg"]
    assert "\n" not in msg.strip(), msg
    for value in values:
        assert value in msg, msg
    return msg


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"registry_port": 70000}, "registry_port 70000 is out of range"),
        ({"registry_tls_ca_days": 20}, "registry_tls_ca_days 20 must be greater than the renewal window of 30 days"),
        ({"registry_wait_timeout": 0}, "registry_wait_timeout 0 must be more than 0"),
        ({"registry_drain_timeout": 601}, "registry_drain_timeout 601 must be 0-600 seconds"),
        ({"registry_go_gc_percent": -1}, "registry_go_gc_percent -1 must be 0 or more"),
        ({"registry_data_path": "/etc"}, "registry_data_path /etc must be an absolute path other than a system directory"),
        ({"registry_gc_on_run": True, "registry_env": {"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_REGION": "eu-west-1"}},
         "registry_gc_delete_untagged needs the filesystem storage driver (what the tags reach is read from the storage), and "
         "registry_env sets REGISTRY_STORAGE: set registry_gc_delete_untagged: false"),
        ({"registry_gc_schedule": True, "registry_env": {"REGISTRY_STORAGE_AZURE_ACCOUNTNAME": "a"}}, "registry_env sets REGISTRY_STORAGE_AZURE_ACCOUNTNAME"),
        ({"registry_gc_uploads_older_than_minutes": -1}, "registry_gc_uploads_older_than_minutes -1 must be 0 or more"),
    ],
)
def test_role_validates_everything_before_anything_changes(work, tmp_path, overrides, named):
    result = run_role_failure("registry", _role_vars(work, **overrides), SHARED_DOCKER_HOST, tmp_path)
    _one_line(result, named)
    _nothing_written(work, overrides.get("registry_port", 5000))


def test_role_data_path_holding_the_config_refused(work, tmp_path):
    result = run_role_failure(
        "registry", _role_vars(work, registry_data_path=str(work)), SHARED_DOCKER_HOST, tmp_path
    )
    _one_line(result, "must not contain registry_auth_htpasswd")
    _nothing_written(work, 5000)


def test_role_no_log_shows_the_one_line_error_not_the_password(work, tmp_path):
    """A bad user name: the module's one-line error is shown (no task-level no_log), the password is not."""
    password = "pw-%s-secret" % PREFIX
    result = run_role_failure(
        "registry",
        _role_vars(work, registry_auth_users=[{"name": "alice\n", "password": password}], registry_tls_generate=False),
        SHARED_DOCKER_HOST, tmp_path,
    )
    msg = _one_line(result, "invalid htpasswd user name")
    assert "censored" not in msg
    assert password not in repr(result)
    assert not (work / "auth").exists()


@pytest.mark.parametrize(
    "builds, named",
    [
        ([{"name": "..", "src": "/tmp"}], "publish_builds name '..' is not an image reference"),
        ([{"name": "demo\n", "src": "/tmp"}], "is not an image reference"),
        ([{"name": "a/b:c", "src": "/tmp"}, {"name": "a_b:c", "src": "/tmp"}], "map to the same build directory"),
    ],
)
def test_dangerous_build_names_refused(work, tmp_path, builds, named):
    build_dir = work / "build"
    result = run_role_failure(
        "publish", {"publish_builds": builds, "publish_images": [], "publish_build_dir": str(build_dir)},
        SHARED_DOCKER_HOST, tmp_path,
    )
    _one_line(result, named)
    assert not build_dir.exists(), "a build context was copied before the names were checked"
