from __future__ import annotations

import datetime
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.dockhand.registry.plugins.module_utils import tls
from ansible_collections.dockhand.registry.plugins.module_utils.tls import TlsError, generate, provided


def _cert(path):
    with open(path, "rb") as stream:
        return x509.load_pem_x509_certificate(stream.read())


def _bytes(path):
    with open(path, "rb") as stream:
        return stream.read()


def test_generate_then_keep(tmp_path):
    directory = str(tmp_path / "tls")
    first = generate(directory, ["registry.example.com", "192.0.2.10", "localhost"])
    assert first["changed"] and len(first["actions"]) == 2
    assert first["names"] == ["DNS:localhost", "DNS:registry.example.com", "IP:192.0.2.10"]
    for name in ("ca.key", "server.key"):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600
    server, ca = _cert(first["cert"]), _cert(first["ca_cert"])
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    files = {name: _bytes(os.path.join(directory, name)) for name in os.listdir(directory)}
    second = generate(directory, ["localhost", "192.0.2.10", "registry.example.com"])
    assert not second["changed"] and second["actions"] == []
    assert {name: _bytes(os.path.join(directory, name)) for name in os.listdir(directory)} == files
    assert second["checksum"] == first["checksum"]


def test_new_names_reissue_server_only(tmp_path):
    directory = str(tmp_path)
    first = generate(directory, ["localhost"])
    ca_before = _bytes(first["ca_cert"])
    result = generate(directory, ["localhost", "10.0.0.1"])
    assert result["changed"] and result["actions"] == [
        "renew server certificate %s (names differ)" % result["cert"]
    ]
    assert _bytes(result["ca_cert"]) == ca_before
    assert result["checksum"] != first["checksum"]
    _cert(result["cert"]).verify_directly_issued_by(_cert(result["ca_cert"]))


def test_new_ca_reissues_server(tmp_path):
    directory = str(tmp_path)
    generate(directory, ["localhost"])
    os.unlink(os.path.join(directory, "ca.key"))
    result = generate(directory, ["localhost"])
    assert result["actions"][0].startswith("renew CA")
    assert "new CA" in result["actions"][1]
    _cert(result["cert"]).verify_directly_issued_by(_cert(result["ca_cert"]))


def test_expiring_server_is_renewed(tmp_path):
    directory = str(tmp_path)
    generate(directory, ["localhost"], days=40, renew_days=30)
    result = generate(directory, ["localhost"], days=40, renew_days=39)
    assert not result["changed"]
    later = tls._now() + datetime.timedelta(days=15)
    original = tls._now
    tls._now = lambda: later
    try:
        result = generate(directory, ["localhost"], days=40, renew_days=30)
    finally:
        tls._now = original
    assert result["changed"] and "expires within 30 days" in result["actions"][0]


def test_check_mode_writes_nothing(tmp_path):
    directory = str(tmp_path / "tls")
    result = generate(directory, ["localhost"], check_mode=True)
    assert result["changed"] and result["checksum"] is None
    assert not os.path.exists(directory)


def test_loose_key_mode_is_fixed(tmp_path):
    directory = str(tmp_path)
    generate(directory, ["localhost"])
    os.chmod(os.path.join(directory, "server.key"), 0o644)
    result = generate(directory, ["localhost"])
    assert result["changed"] and result["actions"] == ["set mode 0600 on %s" % os.path.join(directory, "server.key")]


@pytest.mark.parametrize(
    "names, message",
    [
        ([], "give at least one host name"),
        (["bad name"], "invalid certificate name 'bad name'"),
        (["-x.example"], "invalid certificate name '-x.example'"),
    ],
)
def test_bad_names(tmp_path, names, message):
    with pytest.raises(TlsError, match=message):
        generate(str(tmp_path / "tls"), names)
    assert not os.path.exists(tmp_path / "tls")


def test_provided(tmp_path):
    made = generate(str(tmp_path / "a"), ["localhost"])
    result = provided(made["cert"], made["key"], made["ca_cert"])
    assert not result["changed"] and not result["generated"] and result["names"] == ["DNS:localhost"]
    other = generate(str(tmp_path / "b"), ["localhost"])
    with pytest.raises(TlsError, match="does not match certificate"):
        provided(made["cert"], other["key"])
    with pytest.raises(TlsError, match="is not issued by CA"):
        provided(made["cert"], made["key"], other["ca_cert"])
    with pytest.raises(TlsError, match="does not exist"):
        provided(str(tmp_path / "missing.crt"), made["key"])
    with pytest.raises(TlsError, match="is not a PEM certificate"):
        provided(made["key"], made["key"])


def test_private_keys_never_returned(tmp_path):
    result = generate(str(tmp_path), ["localhost"])
    key = serialization.load_pem_private_key(_bytes(result["key"]), None)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body = "".join(pem.splitlines()[1:-1])
    assert body[:40] not in repr(result)


class _OldCert:
    """A certificate as cryptography 38 (Debian 12) shows it: no ``*_utc`` dates, no ``verify_directly_issued_by``."""

    def __init__(self, cert):
        self._cert = cert

    def __getattr__(self, name):
        if name in ("not_valid_before_utc", "not_valid_after_utc", "verify_directly_issued_by"):
            raise AttributeError(name)
        if name in ("not_valid_before", "not_valid_after"):
            return getattr(self._cert, name + "_utc").replace(tzinfo=None)
        return getattr(self._cert, name)


def test_works_with_the_api_of_cryptography_38(tmp_path):
    generate(str(tmp_path), ["registry.example"])

    def load(name):
        return x509.load_pem_x509_certificate((tmp_path / name).read_bytes())

    ca, server, other_ca = load("ca.crt"), load("server.crt"), None
    assert tls.signed_by(_OldCert(server), ca) and tls.signed_by(server, ca)
    generate(str(tmp_path / "other"), ["registry.example"])
    other_ca = load("other/ca.crt")
    assert not tls.signed_by(_OldCert(server), other_ca) and not tls.signed_by(server, other_ca)
    assert tls.not_after(_OldCert(server)) == server.not_valid_after_utc
    assert tls.not_before(_OldCert(server)) == server.not_valid_before_utc
