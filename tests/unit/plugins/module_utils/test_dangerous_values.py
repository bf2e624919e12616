"""Dangerous values (a system directory as data, a zero wait, too many workers, a readable htpasswd, a CA that
would be renewed on every run) are each refused with one line naming them, before anything changes."""

from __future__ import annotations

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import tls
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import InvalidSpec, RegistrySpec
from ansible_collections.dockhand.registry.plugins.module_utils.htpasswd import parse_mode
from ansible_collections.dockhand.registry.plugins.module_utils.publish import push_options


def spec(**kwargs) -> RegistrySpec:
    values = {"name": "registry", "image": "registry:2", "data_path": "/srv/dh-registry"}
    values.update(kwargs)
    return RegistrySpec(**values)


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/etc/", "/var/lib", "/usr/../etc"])
def test_dangerous_data_path_system_directory(path):
    with pytest.raises(InvalidSpec, match="data_path %s is a system directory" % path):
        spec(data_path=path).validate()


def test_dangerous_data_path_parent_of_config(tmp_path):
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "htpasswd").write_text("")
    mounts = [{"source": str(tmp_path / "auth" / "htpasswd"), "target": "/auth/htpasswd", "type": "bind"}]
    with pytest.raises(InvalidSpec, match="holds mount source"):
        spec(data_path=str(tmp_path), mounts=mounts).validate()
    spec(data_path=str(tmp_path / "data"), mounts=mounts).validate()


@pytest.mark.parametrize("timeout", [0, -5])
def test_dangerous_wait_timeout_not_positive(tmp_path, timeout):
    with pytest.raises(InvalidSpec, match="wait_timeout %d must be more than 0" % timeout):
        spec(data_path=str(tmp_path / "d"), wait_timeout=timeout).validate()


@pytest.mark.parametrize("workers", [0, 65, 10000])
def test_dangerous_workers_above_cap(workers):
    params = {"workers": workers, "username": None, "password": None, "scheme": "auto", "ca_cert": None,
              "validate_certs": True, "timeout": 1}
    with pytest.raises(DockhandError, match="workers must be between 1 and 64, got %d" % workers):
        push_options(params)


@pytest.mark.parametrize("value", [644, -1, "7777", "0644", "0604", 0o1600])
def test_dangerous_htpasswd_mode(value):
    with pytest.raises(DockhandError, match="invalid mode"):
        parse_mode(value)


@pytest.mark.parametrize("value, expected", [("0600", 0o600), ("0640", 0o640), (0o600, 0o600), ("0400", 0o400)])
def test_htpasswd_mode_private_accepted(value, expected):
    assert parse_mode(value) == expected


@pytest.mark.parametrize("ca_days, renew_days", [(30, 30), (10, 20)])
def test_dangerous_tls_ca_days_not_above_renewal_window(tmp_path, ca_days, renew_days):
    with pytest.raises(tls.TlsError, match="ca_days %d must be greater than renew_days %d" % (ca_days, renew_days)):
        tls.generate(str(tmp_path / "tls"), ["localhost"], days=825, ca_days=ca_days, renew_days=renew_days)
    assert not (tmp_path / "tls").exists()
