# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS material of the registry: a generated private CA and server certificate, or the user's own.

Generated material is kept across runs. The CA is kept while its key matches and it stays
valid for longer than ``renew_days``; the server certificate is kept while it is signed by
that CA, its key matches, its subject alternative names are exactly the wanted ones and it
stays valid for longer than ``renew_days``. Anything else is (re)generated, and only that.
Private keys are written with mode 0600 and never returned.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import traceback
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, host_lock, read_optional, write_atomic

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_RE = re.compile(r"(\*\.)?%s(\.%s)*" % (_LABEL, _LABEL), re.ASCII)

# What the module passes to common.run_module to check that cryptography is there.
HAS_CRYPTOGRAPHY = CRYPTOGRAPHY_IMPORT_ERROR is None
CRYPTOGRAPHY_LIBRARY = ("cryptography", HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR)


class TlsError(DockhandError):
    """TLS material cannot be made or used."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def san_entries(names: list[str]) -> list[Any]:
    """The subject alternative names for host names and IP addresses, in a stable order."""
    if not names:
        raise TlsError("give at least one host name or IP address for the registry certificate")
    entries: list[Any] = []
    for name in names:
        text = str(name).strip()
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(text.strip("[]"))))
            continue
        except ValueError:
            pass
        if not _DNS_RE.fullmatch(text) or len(text) > 253:
            raise TlsError("invalid certificate name %r: a host name or an IP address" % name)
        entries.append(x509.DNSName(text.lower()))
    return sorted(set(entries), key=_san_text)


def _san_text(entry: Any) -> str:
    return ("IP:%s" if isinstance(entry, x509.IPAddress) else "DNS:%s") % entry.value


def cert_sans(cert: Any) -> list[Any]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return sorted(set(ext), key=_san_text)


def _read(path: str) -> bytes | None:
    return read_optional(path, TlsError)


def _load(path: str, required: bool, what: str, parse: Any, form: str) -> Any:
    """``parse`` the PEM file at ``path``; None when it is missing or unreadable as ``form``, unless ``required``."""
    data = _read(path)
    if data is None:
        if required:
            raise TlsError("%s file %s does not exist" % (what, path))
        return None
    try:
        return parse(data)
    except (ValueError, TypeError):
        if required:
            raise TlsError("%s is not %s" % (path, form)) from None
        return None


def load_cert(path: str, required: bool = False) -> Any:
    return _load(path, required, "certificate", x509.load_pem_x509_certificate, "a PEM certificate")


def load_key(path: str, required: bool = False) -> Any:
    return _load(
        path, required, "private key", lambda data: serialization.load_pem_private_key(data, password=None), "an unencrypted PEM private key"
    )


def _public(obj: Any) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: Any, key: Any) -> bool:
    return _public(cert) == _public(key)


def not_before(cert: Any) -> datetime.datetime:
    """The start of validity, timezone-aware (``*_utc`` came with cryptography 42; Debian 12 ships 38)."""
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def not_after(cert: Any) -> datetime.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _valid_for(cert: Any, days: int) -> bool:
    now = _now()
    return not_before(cert) <= now and not_after(cert) > now + datetime.timedelta(days=days)


def ca_usable(cert: Any, key: Any, renew_days: int) -> bool:
    if cert is None or key is None or not key_matches(cert, key) or not _valid_for(cert, renew_days):
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def signed_by(cert: Any, ca: Any) -> bool:
    try:
        if hasattr(cert, "verify_directly_issued_by"):
            cert.verify_directly_issued_by(ca)
            return True
        # cryptography < 40 (Debian 12): the same checks by hand, for the EC keys this module makes and reads.
        if cert.issuer != ca.subject:
            return False
        public = ca.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            from cryptography.hazmat.primitives.asymmetric import padding

            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def why_server_unusable(cert: Any, key: Any, ca: Any, sans: list[Any], renew_days: int) -> str | None:
    """None when the server certificate can be kept, else the reason to make a new one."""
    if cert is None or key is None:
        return "missing"
    if not key_matches(cert, key):
        return "key does not match"
    if not signed_by(cert, ca):
        return "not signed by the CA"
    if cert_sans(cert) != sans:
        return "names differ"
    if not _valid_for(cert, renew_days):
        return "expires within %d days" % renew_days
    return None


def _new_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(common_name: str, days: int) -> tuple[Any, Any]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server(ca_cert: Any, ca_key: Any, sans: list[Any], days: int) -> tuple[Any, Any]:
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _san_text(sans[0]).split(":", 1)[1])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), not_after(ca_cert)))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _cert_pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def fingerprint(cert_path: str, key_path: str) -> str:
    """SHA-256 over the certificate and key files: changes whenever the server would serve other material."""
    digest = hashlib.sha256()
    for path in (cert_path, key_path):
        digest.update(_read(path) or b"")
    return digest.hexdigest()


def _describe(cert: Any) -> dict[str, Any]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "names": [_san_text(e) for e in cert_sans(cert)],
        "not_after": not_after(cert).isoformat(),
        "serial": "%x" % cert.serial_number,
    }


def generate(
    directory: str,
    names: list[str],
    days: int = 825,
    ca_days: int = 3650,
    renew_days: int = 30,
    ca_common_name: str = "dockhand.registry CA",
    check_mode: bool = False,
) -> dict[str, Any]:
    """Keep or make ``ca.crt``/``ca.key`` and ``server.crt``/``server.key`` in ``directory``.

    Outside check mode the directory is locked for the whole read-decide-write: two runs generating at once
    would each make a CA, and the second would overwrite the first's after clients trusted it."""
    if not os.path.isabs(directory):
        raise TlsError("TLS directory %r must be absolute" % directory)
    if check_mode:
        return _generate(directory, names, days, ca_days, renew_days, ca_common_name, check_mode)
    with host_lock("registry-tls", os.path.realpath(directory), 120, "TLS directory %s" % directory):
        return _generate(directory, names, days, ca_days, renew_days, ca_common_name, check_mode)


def _generate(
    directory: str,
    names: list[str],
    days: int,
    ca_days: int,
    renew_days: int,
    ca_common_name: str,
    check_mode: bool,
) -> dict[str, Any]:
    if days < 1 or ca_days < 1 or renew_days < 0 or renew_days >= days:
        raise TlsError("invalid validity: days=%d ca_days=%d renew_days=%d" % (days, ca_days, renew_days))
    if ca_days <= renew_days:
        # A new CA would already be due for renewal: CA, certificate, container and trust would churn on every run.
        raise TlsError(
            "ca_days %d must be greater than renew_days %d (else the CA is renewed on every run)" % (ca_days, renew_days)
        )
    sans = san_entries(names)
    paths = {k: os.path.join(directory, v) for k, v in
             (("ca_cert", CA_CERT), ("ca_key", CA_KEY), ("cert", SERVER_CERT), ("key", SERVER_KEY))}
    actions: list[str] = []
    ca_cert, ca_key = load_cert(paths["ca_cert"]), load_key(paths["ca_key"])
    before = {"ca": _describe(ca_cert) if ca_cert else None}
    new_ca = not ca_usable(ca_cert, ca_key, renew_days)
    if new_ca:
        actions.append("create CA %s" % paths["ca_cert"] if ca_cert is None else "renew CA %s" % paths["ca_cert"])
        ca_cert, ca_key = make_ca(ca_common_name, ca_days)
    cert, key = load_cert(paths["cert"]), load_key(paths["key"])
    before["server"] = _describe(cert) if cert else None
    why = "new CA" if new_ca and cert is not None else why_server_unusable(cert, key, ca_cert, sans, renew_days)
    if why:
        actions.append("%s server certificate %s (%s)" % ("create" if cert is None else "renew", paths["cert"], why))
        cert, key = make_server(ca_cert, ca_key, sans, days)
    if actions and not check_mode:
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            if new_ca:
                write_atomic(paths["ca_key"], _key_pem(ca_key), 0o600)
                write_atomic(paths["ca_cert"], _cert_pem(ca_cert), 0o644)
            if why:
                write_atomic(paths["key"], _key_pem(key), 0o600)
                write_atomic(paths["cert"], _cert_pem(cert), 0o644)
        except OSError as exc:
            raise TlsError("cannot write TLS files in %s: %s" % (directory, exc.strerror or exc)) from None
    for path in (paths["ca_key"], paths["key"]):
        if os.path.exists(path) and os.stat(path).st_mode & 0o077:
            actions.append("set mode 0600 on %s" % path)
            if not check_mode:
                os.chmod(path, 0o600)
    after = {"ca": _describe(ca_cert), "server": _describe(cert)}
    return {
        "changed": bool(actions),
        "actions": actions,
        "generated": True,
        **paths,
        "names": after["server"]["names"],
        "not_after": after["server"]["not_after"],
        "checksum": fingerprint(paths["cert"], paths["key"]) if not (check_mode and actions) else None,
        "diff": {"before": before, "after": after},
    }


def provided(cert_path: str, key_path: str, ca_path: str | None = None) -> dict[str, Any]:
    """Check the user's certificate and key (they match, the certificate is in force); change nothing."""
    cert = load_cert(cert_path, required=True)
    key = load_key(key_path, required=True)
    if not key_matches(cert, key):
        raise TlsError("private key %s does not match certificate %s" % (key_path, cert_path))
    if not _valid_for(cert, 0):
        raise TlsError("certificate %s is not valid now (valid %s to %s)" % (
            cert_path, not_before(cert).isoformat(), not_after(cert).isoformat()))
    if ca_path:
        ca = load_cert(ca_path, required=True)
        if not signed_by(cert, ca):
            raise TlsError("certificate %s is not issued by CA %s" % (cert_path, ca_path))
    info = _describe(cert)
    return {
        "changed": False,
        "actions": [],
        "generated": False,
        "ca_cert": ca_path,
        "ca_key": None,
        "cert": cert_path,
        "key": key_path,
        "names": info["names"],
        "not_after": info["not_after"],
        "checksum": fingerprint(cert_path, key_path),
        "diff": {"before": {"server": info}, "after": {"server": info}},
    }
