"""RegistryClient against a scripted HTTP session (no network)."""

from __future__ import annotations

import socket

import pytest
import requests

from ansible_collections.dockhand.registry.plugins.module_utils import transport
from ansible_collections.dockhand.registry.plugins.module_utils.registry import (
    MANIFEST_MEDIA_TYPES,
    Credentials,
    RegistryClient,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import (
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    is_loopback,
)
from ansible_collections.dockhand.registry.tests.support.unit import FakeResponse, FakeSession, registry_client

DIGEST = "sha256:" + "c" * 64


def client(handler, **options) -> tuple[RegistryClient, FakeSession]:
    return registry_client(handler, **options)


# -- manifest_digest -------------------------------------------------------------------
def test_manifest_digest_200():
    reg, session = client(lambda m, u, **k: FakeResponse(200, {"Docker-Content-Digest": DIGEST}))
    assert reg.manifest_digest("team/demo", "1.0") == DIGEST
    method, url, _kwargs = session.calls[0]
    assert method == "HEAD"
    assert url == "http://localhost:5100/v2/team/demo/manifests/1.0"


def test_manifest_digest_404_is_absent():
    reg, _session = client(lambda m, u, **k: FakeResponse(404))
    assert reg.manifest_digest("demo", "1.0") is None


def test_manifest_accept_header_carries_the_four_media_types():
    reg, session = client(lambda m, u, **k: FakeResponse(200, {"Docker-Content-Digest": DIGEST}))
    reg.manifest_digest("demo", "1.0")
    accept = session.calls[0][2]["headers"]["Accept"]
    sent = {part.strip() for part in accept.split(",")}
    assert sent == set(MANIFEST_MEDIA_TYPES)
    assert {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    } == sent


def test_manifest_digest_without_header_is_an_error():
    reg, _session = client(lambda m, u, **k: FakeResponse(200))
    with pytest.raises(RegistryError, match=r"Docker-Content-Digest.*demo:1.0"):
        reg.manifest_digest("demo", "1.0")


def test_manifest_digest_500_names_registry_and_status():
    reg, _session = client(lambda m, u, **k: FakeResponse(500, body="boom\nmore"))
    with pytest.raises(RegistryError) as err:
        reg.manifest_digest("demo", "1.0")
    assert "localhost:5100 answered 500" in str(err.value)
    assert "\n" not in str(err.value)


# -- paging ----------------------------------------------------------------------------
def test_tags_paged_through_link_header():
    pages = {
        "http://localhost:5100/v2/demo/tags/list?n=1000": FakeResponse(
            200, {"Link": '</v2/demo/tags/list?last=b&n=1000>; rel="next"'}, {"name": "demo", "tags": ["a", "b"]}
        ),
        "http://localhost:5100/v2/demo/tags/list?last=b&n=1000": FakeResponse(200, {}, {"name": "demo", "tags": ["c"]}),
    }
    reg, session = client(lambda m, u, **k: pages[u])
    assert reg.tags("demo") == ["a", "b", "c"]
    assert len(session.calls) == 2


def test_catalog_paged_through_link_header():
    pages = {
        "http://localhost:5100/v2/_catalog?n=1000": FakeResponse(
            200, {"Link": '</v2/_catalog?last=x&n=1000>; rel="next"'}, {"repositories": ["w", "x"]}
        ),
        "http://localhost:5100/v2/_catalog?last=x&n=1000": FakeResponse(
            200, {"Link": '<http://localhost:5100/v2/_catalog?last=y&n=1000>; rel="next"'}, {"repositories": ["y"]}
        ),
        "http://localhost:5100/v2/_catalog?last=y&n=1000": FakeResponse(200, {}, {"repositories": []}),
    }
    reg, _session = client(lambda m, u, **k: pages[u])
    assert reg.catalog() == ["w", "x", "y"]


def test_catalog_of_a_registry_with_smaller_pages_than_asked():
    """catalog.maxentries under the page size asked: 400 PAGINATION_NUMBER_INVALID, then the registry's own pages."""
    refused = FakeResponse(400, body='{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}')
    pages = {
        "http://localhost:5100/v2/_catalog?n=1000": refused,
        "http://localhost:5100/v2/_catalog": FakeResponse(200, {"Link": '</v2/_catalog?last=x&n=2>; rel="next"'}, {"repositories": ["w", "x"]}),
        "http://localhost:5100/v2/_catalog?last=x&n=2": FakeResponse(200, {}, {"repositories": ["y"]}),
    }
    reg, _session = client(lambda m, u, **k: pages[u])
    assert reg.catalog() == ["w", "x", "y"]


def test_tags_of_unknown_repository_is_empty():
    reg, _session = client(lambda m, u, **k: FakeResponse(404, body={"errors": [{"code": "NAME_UNKNOWN"}]}))
    assert reg.tags("nothere") == []


# -- authentication --------------------------------------------------------------------
def test_basic_auth_challenge_answered():
    def handler(method, url, auth=None, **kwargs):
        if auth != ("alice", "secret"):
            return FakeResponse(401, {"WWW-Authenticate": 'Basic realm="Registry Realm"'})
        return FakeResponse(200, {"Docker-Content-Digest": DIGEST})

    reg, session = client(handler, username="alice", password="secret")
    assert reg.manifest_digest("demo", "1") == DIGEST
    assert [c[2].get("auth") for c in session.calls] == [None, ("alice", "secret")]
    # The client now sends Basic credentials straight away.
    assert reg.manifest_digest("demo", "1") == DIGEST
    assert session.calls[-1][2]["auth"] == ("alice", "secret")
    assert len(session.calls) == 3


def test_bearer_token_challenge_answered():
    challenge = 'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:demo:pull"'

    def handler(method, url, headers=None, auth=None, params=None, **kwargs):
        if url == "https://auth.example/token":
            assert auth == ("alice", "secret")
            assert params == {"service": "reg.example", "scope": "repository:demo:pull"}
            return FakeResponse(200, body={"token": "tok123"})
        if (headers or {}).get("Authorization") == "Bearer tok123":
            return FakeResponse(200, {"Docker-Content-Digest": DIGEST})
        return FakeResponse(401, {"WWW-Authenticate": challenge})

    reg, session = client(handler, username="alice", password="secret")
    assert reg.manifest_digest("demo", "1") == DIGEST
    assert [c[1] for c in session.calls] == [
        "http://localhost:5100/v2/demo/manifests/1",
        "https://auth.example/token",
        "http://localhost:5100/v2/demo/manifests/1",
    ]
    # The token is kept for the scope.
    reg.manifest_digest("demo", "1")
    assert len(session.calls) == 4


def test_bearer_access_token_key_accepted():
    def handler(method, url, headers=None, **kwargs):
        if url.startswith("https://auth"):
            return FakeResponse(200, body={"access_token": "t2"})
        if (headers or {}).get("Authorization") == "Bearer t2":
            return FakeResponse(200)
        return FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="https://auth/t",service="s"'})

    reg, _session = client(handler, username="u", password="p")
    assert reg.ping() == 200


def test_refused_basic_login_raises_auth_error():
    reg, _session = client(
        lambda m, u, **k: FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'}), username="alice", password="bad"
    )
    with pytest.raises(RegistryAuthError, match="refused the login of user 'alice'"):
        reg.manifest_digest("demo", "1")


def test_refused_token_raises_auth_error():
    def handler(method, url, **kwargs):
        if url.startswith("https://auth"):
            return FakeResponse(401)
        return FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="https://auth/t",service="s"'})

    reg, _session = client(handler, username="alice", password="bad")
    with pytest.raises(RegistryAuthError, match="alice"):
        reg.ping()


def test_auth_required_without_credentials():
    reg, session = client(lambda m, u, **k: FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'}))
    with pytest.raises(RegistryAuthError, match="requires authentication"):
        reg.ping()
    assert len(session.calls) == 1


def test_auth_error_is_a_registry_error():
    assert issubclass(RegistryAuthError, RegistryError)
    assert issubclass(RegistryUnreachable, RegistryError)


# -- reachability and scheme -----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_unreachable_real_socket():
    reg = RegistryClient("127.0.0.1:%d" % _free_port(), scheme="http", timeout=2)
    with pytest.raises(RegistryUnreachable) as err:
        reg.manifest_digest("demo", "1")
    assert "127.0.0.1" in str(err.value)
    assert "\n" not in str(err.value)


def test_connection_refused_is_unreachable_auto_scheme():
    reg = RegistryClient("127.0.0.1:%d" % _free_port(), timeout=2)
    with pytest.raises(RegistryUnreachable, match="unreachable"):
        reg.ping()


def test_connection_error_mocked():
    def handler(method, url, **kwargs):
        raise requests.exceptions.ConnectionError("Connection refused")

    reg, _session = client(handler)
    with pytest.raises(RegistryUnreachable, match="localhost:5100 is unreachable: Connection refused"):
        reg.tags("demo")


def test_scheme_probe_falls_back_to_http():
    def handler(method, url, **kwargs):
        if url.startswith("https://"):
            raise requests.exceptions.SSLError("wrong version number")
        return FakeResponse(200, {"Docker-Content-Digest": DIGEST})

    reg, session = client(handler, scheme=None)
    assert reg.manifest_digest("demo", "1") == DIGEST
    assert [c[1] for c in session.calls] == [
        "https://localhost:5100/v2/",
        "http://localhost:5100/v2/",
        "http://localhost:5100/v2/demo/manifests/1",
    ]
    assert reg.base_url == "http://localhost:5100"


def test_scheme_probe_keeps_https():
    reg, session = client(lambda m, u, **k: FakeResponse(200), scheme=None)
    assert reg.ping() == 200
    assert reg.base_url == "https://localhost:5100"
    assert session.calls[0][1] == "https://localhost:5100/v2/"


def test_scheme_probe_both_fail():
    def handler(method, url, **kwargs):
        raise requests.exceptions.ConnectionError("refused")

    reg, _session = client(handler, scheme=None)
    with pytest.raises(RegistryUnreachable) as err:
        reg.ping()
    assert "https: refused" in str(err.value) and "http: refused" in str(err.value)


def test_tls_options_on_session(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("CA")
    _reg, session = client(lambda m, u, **k: FakeResponse(200), ca_cert=str(ca))
    assert session.verify == str(ca)
    _reg, session = client(lambda m, u, **k: FakeResponse(200), validate_certs=False, ca_cert="/etc/ca.crt")
    assert session.verify is False


def test_invalid_registry_address_rejected():
    with pytest.raises(Exception, match="'http://x'"):
        RegistryClient("http://x")


@pytest.mark.parametrize(
    "address, expected",
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("[::1]:5000", True),
        ("r.io:5000", False),
        ("10.1.1.1", False),
    ],
)
def test_is_loopback(address, expected):
    assert is_loopback(address) is expected


# -- credentials -----------------------------------------------------------------------
def test_credentials_given_win_over_stored():
    creds = Credentials("u", "p", lambda registry: {"username": "s", "password": "sp"})
    assert creds.for_registry("r.io") == ("u", "p")
    assert creds.auth_config("r.io") == {"username": "u", "password": "p", "serveraddress": "r.io"}


def test_credentials_stored_used_when_none_given():
    creds = Credentials(None, None, lambda registry: {"Username": "s", "Password": "sp"})
    assert creds.for_registry("r.io") == ("s", "sp")
    assert Credentials(None, None).auth_config("r.io") is None


def test_client_factory_passes_options():
    make = Credentials("u", "p").client_factory(scheme="http", timeout=3)
    reg = make("localhost:5100")
    assert (reg.username, reg.password, reg.timeout, reg.base_url) == ("u", "p", 3, "http://localhost:5100")


# -- wait_ready ------------------------------------------------------------------------
def test_wait_ready_stops_when_process_gone():
    with pytest.raises(RegistryUnreachable, match="stopped before it answered"):
        transport.wait_ready("127.0.0.1:%d" % _free_port(), "http", 30, still_running=lambda: False)


def test_wait_ready_times_out():
    with pytest.raises(RegistryUnreachable, match=r"did not answer /v2/ within 0.3s"):
        transport.wait_ready("127.0.0.1:%d" % _free_port(), "http", 0.3)


# -- no credentials over plain HTTP ---------------------------------------------------
def test_scheme_auto_no_http_fallback_for_remote_address():
    def handler(method, url, **kwargs):
        if url.startswith("https://"):
            raise requests.exceptions.SSLError("wrong version number")
        return FakeResponse(200)

    session = FakeSession(handler)
    reg = RegistryClient("registry.example:5000", session=session)
    with pytest.raises(RegistryUnreachable, match="plain HTTP is tried only for loopback addresses"):
        reg.ping()
    assert [c[1] for c in session.calls] == ["https://registry.example:5000/v2/"]


def _basic_401(method, url, **kwargs):
    if url.startswith("https://"):
        raise requests.exceptions.SSLError("wrong version number")
    if kwargs.get("auth"):
        return FakeResponse(200, {"Docker-Content-Digest": DIGEST})
    return FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})


def test_no_credentials_over_http_unless_scheme_http():
    reg, session = client(_basic_401, scheme=None, username="alice", password="s3cret")
    with pytest.raises(RegistryAuthError, match="speaks plain HTTP") as err:
        reg.manifest_digest("demo", "1")
    assert "s3cret" not in str(err.value)
    assert not any(c[2].get("auth") for c in session.calls)


def test_credentials_over_http_when_asked_warns():
    reg, session = client(_basic_401, scheme="http", username="alice", password="s3cret")
    assert reg.manifest_digest("demo", "1") == DIGEST
    assert any(c[2].get("auth") for c in session.calls)
    assert reg.warnings == ["the password of user 'alice' is sent to registry localhost:5100 over plain HTTP (registry_scheme http)"]


def test_no_credentials_to_http_token_realm():
    def handler(method, url, **kwargs):
        return FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="r"'})

    session = FakeSession(handler)
    reg = RegistryClient("registry.example", username="alice", password="s3cret", scheme="https", session=session)
    with pytest.raises(RegistryAuthError, match="speaks plain HTTP"):
        reg.ping()
    assert not any(c[2].get("auth") for c in session.calls)


def test_credentials_over_https_no_warning():
    def handler(method, url, **kwargs):
        if kwargs.get("auth"):
            return FakeResponse(200)
        return FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})

    reg, _session = client(handler, scheme="https", username="alice", password="s3cret")
    assert reg.ping() == 200
    assert reg.warnings == []
