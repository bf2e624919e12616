"""Inputs that used to end in a traceback (a missing CA file, no IPv6 on the host, an htpasswd file that is not
UTF-8) each give a one-line collection error naming the value."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import container, htpasswd
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.publish import push_options
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient


def test_traceback_ca_cert_missing_file(tmp_path):
    missing = str(tmp_path / "no-ca.crt")
    with pytest.raises(DockhandError, match="ca_cert %s does not exist" % missing) as err:
        RegistryClient("registry.example:5000", ca_cert=missing)
    assert "\n" not in str(err.value)


def test_traceback_ca_cert_missing_file_through_push_options(tmp_path):
    missing = str(tmp_path / "no-ca.crt")
    params = {"workers": 1, "username": None, "password": None, "registry_scheme": "auto", "registry_ca_cert": missing,
              "registry_validate_certs": True, "registry_timeout": 1}
    factory = push_options(params)["registry_factory"]
    with pytest.raises(DockhandError, match="does not exist"):
        factory("registry.example:5000")


def test_traceback_ipv6_bind_address_without_ipv6(monkeypatch):
    real = socket.socket

    def no_ipv6(family=socket.AF_INET, *args, **kwargs):
        if family == socket.AF_INET6:
            raise OSError(97, "Address family not supported by protocol")
        return real(family, *args, **kwargs)

    monkeypatch.setattr(container.socket, "socket", no_ipv6)
    problem = container.port_problem("::1", 5000)
    assert problem == "this host cannot open an IPv6 socket (Address family not supported by protocol)"


def test_traceback_non_utf8_htpasswd(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_bytes(b"al\xffice:$2y$10$" + b"a" * 53 + b"\n")
    with pytest.raises(htpasswd.HtpasswdError, match="htpasswd file %s is not UTF-8 text" % path):
        htpasswd.converge(str(path), [htpasswd.User("alice", "pw")], check_mode=True)
    assert path.read_bytes().startswith(b"al\xffice")
