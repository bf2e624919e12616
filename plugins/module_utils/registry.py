# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP client for the Docker Registry HTTP API v2 (distribution 2.x and 3.x).

Every question the collection asks a registry goes through :class:`RegistryClient`:
is it up (``/v2/``), which digest does ``<name>:<tag>`` have (manifest ``HEAD``),
which tags and repositories does it hold (``tags/list`` and ``_catalog``, paged), what a
manifest and an image configuration hold (manifest ``GET``, config blob ``GET``), and the one
deletion the registry API offers (manifest ``DELETE`` by digest). :meth:`RegistryClient.map`
runs many of these questions at once over the client's one pooled session.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urljoin

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.reference import validate_registry

try:
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter
    from requests.utils import requote_uri, select_proxy

    REQUESTS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

# With fewer types in Accept, distribution 2.8 may convert a schema2 manifest to
# schema1 (a different digest), and an OCI manifest may read as missing.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
PAGE_SIZE = 1000
INDEX_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
_UNBUILT = object()
T = TypeVar("T")
R = TypeVar("R")

_LINK_NEXT_RE = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


# What a module passes to common.run_module to check that requests is there.
HAS_REQUESTS = REQUESTS_IMPORT_ERROR is None
REQUESTS_LIBRARY = ("requests", HAS_REQUESTS, REQUESTS_IMPORT_ERROR)


class RegistryError(DockhandError):
    """The registry answered something other than what the call needs."""


class RegistryUnreachable(RegistryError):
    """No HTTP answer from the registry (connection refused, TLS failure, time-out)."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or wants some and none were given)."""


class RegistryDeleteDisabled(RegistryError):
    """The registry refuses deletes (``storage.delete.enabled`` is off)."""


class ManifestMissing(RegistryError):
    """The registry does not hold the manifest or blob asked for."""


class RegistryReadOnly(RegistryError):
    """The registry refuses uploads: a pull-through cache (distribution's proxy mode) or a read-only registry."""


# Blobs stream through in pieces of this size: the memory a copy takes, whatever the layer size.
CHUNK_SIZE = 256 * 1024


class Manifest(NamedTuple):
    """A manifest as the registry stores it (``data`` verbatim), its media type and digest."""

    data: bytes
    media_type: str
    digest: str


class BlobStream:
    """A blob being read from a registry, as the body of the upload to another one.

    requests sends a file-like body with a length as one request with a Content-Length, reading it
    piece by piece (never all in memory); the length comes from the manifest's descriptor."""

    def __init__(self, response: requests.Response, size: int) -> None:
        self.response = response
        self.size = size
        self.sent = 0

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = CHUNK_SIZE) -> bytes:
        if amount is None or amount < 0 or amount > CHUNK_SIZE:
            amount = CHUNK_SIZE
        data = self.response.raw.read(amount, decode_content=False)
        self.sent += len(data)
        return data

    def close(self) -> None:
        self.response.close()


def _pull(repository: str) -> str:
    return "repository:%s:pull" % repository


def _push(repository: str) -> str:
    return "repository:%s:pull,push" % repository


def _reason(exc: Exception) -> str:
    """The cause of a requests (or urllib3) error in a few words ("Connection refused"), not urllib3's nested reprs."""
    text = one_line(exc)
    match = _ERRNO_RE.search(text)
    if match:
        return match.group(1).strip()
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)):
        return "timed out"
    return text[:300]


class _Answer:
    """What the fast GET path (urllib3 directly) answers, shaped as much of a requests.Response as the callers use."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Any, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


# Errors of the fast path: urllib3's own, and what http.client raises beneath it (a bad status line, a URL it refuses).
_FAST_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError)
if REQUESTS_IMPORT_ERROR is None:
    import http.client

    _FAST_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError)


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RegistryClient:
    """Talk to one registry.

    ``scheme`` may be ``https``, ``http`` or ``None`` (auto: https first; plain http only for a loopback
    address, as the Docker engine reaches only those insecurely without ``insecure-registries``).

    Credentials are never sent over plain HTTP unless ``scheme`` is ``http`` (asked for explicitly); then a
    warning says so (``warnings``).
    """

    def __init__(
        self,
        registry: str,
        username: str | None = None,
        password: str | None = None,
        ca_cert: str | None = None,
        validate_certs: bool = True,
        scheme: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 8,
        session: requests.Session | None = None,
    ) -> None:
        self.registry = validate_registry(registry)
        if ca_cert and validate_certs and not os.path.isfile(ca_cert):
            # requests would raise a bare OSError (a traceback) at the first request.
            raise RegistryError("ca_cert %s does not exist or is not a file (the CA to verify registry %s)" % (ca_cert, registry))
        self.username = username
        self.password = password
        self.timeout = timeout
        self._scheme = scheme
        self._explicit_http = scheme == "http"
        self.warnings: list[str] = []
        self._tokens: dict[str, str] = {}
        self._basic = False
        self.pool_size = max(pool_size, 1)
        # Parallel requests share the scheme probe and the auth challenge: one thread answers, the others wait.
        self._lock = threading.Lock()
        own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 1))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        # The fast GET path (see _get): urllib3 straight on the connection pool of this client's own session.
        # Built at the first GET; None when the session was given (tests' stand-ins) or a proxy is configured.
        self._own_session = own_session
        self._pool: Any = _UNBUILT
        self._basic_header = ""
        # Passed with every request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        # from the environment (requests merges those over it), which would ignore ``ca_cert``.
        self.verify: str | bool = ca_cert if (ca_cert and validate_certs) else bool(validate_certs)
        self.session.verify = self.verify
        self.session.headers["User-Agent"] = "dockhand.registry"

    # -- plumbing -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._scheme is None:
            with self._lock:
                if self._scheme is None:
                    self._scheme = self._probe_scheme()
        return "%s://%s" % (self._scheme, self.registry)

    def _probe_scheme(self) -> str:
        errors = []
        # Plain HTTP only where it cannot cross a network: a TLS or connection error on a remote address must not
        # downgrade the connection (an attacker in the path could cause it, then read what is sent in clear).
        schemes = ("https", "http") if is_loopback(self.registry) else ("https",)
        for scheme in schemes:
            try:
                answer = self.session.get(
                    "%s://%s/v2/" % (scheme, self.registry), timeout=self.timeout, allow_redirects=False, verify=self.verify
                )
                if scheme == "http" and answer.status_code == 400 and "HTTPS server" in answer.text:
                    # A TLS server (Go's answer to plain HTTP): the https error above is the real one.
                    break
                return scheme
            except requests.exceptions.SSLError as exc:
                errors.append("%s: %s" % (scheme, one_line(exc)[:300]))
            except requests.exceptions.RequestException as exc:
                errors.append("%s: %s" % (scheme, _reason(exc)))
                if scheme == "https" and not isinstance(exc, requests.exceptions.ConnectionError):
                    break
        hint = "" if len(schemes) > 1 else "; plain HTTP is tried only for loopback addresses: give registry_scheme http to use it"
        raise RegistryUnreachable(
            "registry %s is unreachable (%s)%s" % (self.registry, one_line("; ".join(errors)), hint)
        )

    def _refused(self) -> RegistryAuthError:
        if not self.username:
            return RegistryAuthError("registry %s requires authentication: give username and password" % self.registry)
        return RegistryAuthError("registry %s refused the login of user %r" % (self.registry, self.username))

    def _check_clear_text(self, url: str) -> None:
        """Refuse to send credentials over plain HTTP unless the user asked for HTTP; warn when asked."""
        if not url.lower().startswith("http://"):
            return
        if not self._explicit_http:
            raise RegistryAuthError(
                "registry %s speaks plain HTTP: the password of user %r is not sent in clear text;"
                " give registry_scheme http to allow it, or serve the registry over TLS" % (self.registry, self.username)
            )
        warning = "the password of user %r is sent to registry %s over plain HTTP (registry_scheme http)" % (
            self.username, self.registry)
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _answer_challenge(self, response: requests.Response, scope: str, url: str) -> None:
        """Learn from a 401 how to authenticate: Basic, or a Bearer token for ``scope``."""
        if not self.username or not self.password:
            raise self._refused()
        challenge = response.headers.get("WWW-Authenticate", "")
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "bearer":
            params = dict(_CHALLENGE_PARAM_RE.findall(challenge))
            self._check_clear_text(params.get("realm", ""))
            query: dict[str, Any] = {"service": params.get("service", "")}
            if scope or params.get("scope"):
                scopes = (scope or params["scope"]).split(" ")  # a mount asks for two: pull,push here, pull there
                query["scope"] = scopes if len(scopes) > 1 else scopes[0]
            try:
                answer = self.session.get(
                    params.get("realm", ""),
                    params=query,
                    auth=(self.username, self.password),
                    timeout=self.timeout,
                    verify=self.verify,
                )
            except requests.exceptions.RequestException as exc:
                raise RegistryUnreachable(
                    "token service of registry %s is unreachable: %s" % (self.registry, _reason(exc))
                ) from None
            if answer.status_code != 200:
                raise self._refused()
            body = answer.json()
            self._tokens[scope] = body.get("token") or body.get("access_token") or ""
        else:
            self._check_clear_text(url)
            if not self._basic_header:
                # The header requests itself would send for auth=(username, password) (same encoding rules).
                prepared = requests.Request("GET", url, auth=(self.username, self.password)).prepare()
                self._basic_header = prepared.headers["Authorization"]
            self._basic = True

    def _send(self, method: str, url: str, scope: str, headers: dict[str, str], kwargs: dict) -> requests.Response:
        headers = dict(headers)
        if scope in self._tokens:
            headers["Authorization"] = "Bearer " + self._tokens[scope]
        auth = (self.username, self.password) if self._basic else None
        kwargs.setdefault("verify", self.verify)
        return self.session.request(method, url, headers=headers, auth=auth, **kwargs)

    def request(self, method: str, path: str, scope: str = "", **kwargs) -> requests.Response:
        """Send one request to the registry, answering an auth challenge once if there is one."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        kwargs.setdefault("timeout", self.timeout)
        headers = kwargs.pop("headers", None) or {}
        try:
            response = self._send(method, url, scope, headers, kwargs)
            if response.status_code == 401:
                with self._lock:
                    self._answer_challenge(response, scope, url)
                response = self._send(method, url, scope, headers, kwargs)
                if response.status_code == 401:
                    raise self._refused()
        except requests.exceptions.RequestException as exc:
            raise RegistryUnreachable("registry %s is unreachable: %s" % (self.registry, _reason(exc))) from None
        return response

    # -- the fast GET path: manifests and configuration blobs, thousands at once -----------------------
    def _fast_pool(self) -> Any:
        """The urllib3 connection pool of this client's session for the registry, or None to use requests.

        requests costs about twice the client CPU of urllib3 per request (environment proxies, netrc and hooks
        looked up again for every request). The pool is the one the session's adapter itself uses, with the
        TLS settings requests would give it: ``verify`` merged with the environment as requests merges it
        (REQUESTS_CA_BUNDLE), ``ca_cert`` as the CA bundle, no verification with validate_certs off. When a
        proxy applies to the registry (HTTP(S)_PROXY without NO_PROXY), every request goes through requests."""
        if self._pool is _UNBUILT:
            base = self.base_url
            with self._lock:
                if self._pool is _UNBUILT:
                    self._pool = self._build_pool(base)
        return self._pool

    def _build_pool(self, base: str) -> Any:
        adapter = self.session.get_adapter(base) if self._own_session else None
        if adapter is None or not hasattr(adapter, "get_connection_with_tls_context"):
            return None  # a session given from outside, or requests older than 2.32: requests does it all
        settings = self.session.merge_environment_settings(base + "/", {}, None, self.verify, None)
        if select_proxy(base + "/", settings["proxies"]):
            return None
        prepared = requests.Request("GET", base + "/v2/").prepare()
        pool = adapter.get_connection_with_tls_context(prepared, settings["verify"], proxies=None, cert=settings["cert"])
        self._fast_timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        return pool

    def _fast_send(self, pool: Any, path: str, scope: str, accept: str | None) -> Any:
        headers = {"User-Agent": "dockhand.registry", "Accept-Encoding": "gzip, deflate"}
        if accept:
            headers["Accept"] = accept
        token = self._tokens.get(scope)
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        elif self._basic:
            headers["Authorization"] = self._basic_header
        # RequestMethods.request: a GET with no fields goes straight to the pool's own request call.
        return pool.request(
            "GET", path, headers=headers, retries=False, redirect=False, timeout=self._fast_timeout,
            preload_content=True, assert_same_host=False,
        )

    def _get(self, path: str, scope: str, accept: str | None = None) -> Any:
        """``GET path`` with the body read: the hot path of registry_info (one request per manifest and per
        configuration). Answers an auth challenge once as :meth:`request` does; a redirect (a blob held in
        object storage) is followed by requests."""
        pool = self._fast_pool()
        if pool is None:
            return self.request("GET", path, scope=scope, headers={"Accept": accept} if accept else None)
        path = requote_uri(path)
        try:
            answer = self._fast_send(pool, path, scope, accept)
            if answer.status == 401:
                with self._lock:
                    self._answer_challenge(answer, scope, self.base_url + path)
                answer = self._fast_send(pool, path, scope, accept)
                if answer.status == 401:
                    raise self._refused()
        except _FAST_ERRORS as exc:
            raise RegistryUnreachable("registry %s is unreachable: %s" % (self.registry, _reason(exc))) from None
        if 300 <= answer.status < 400:
            return self.request("GET", path, scope=scope, headers={"Accept": accept} if accept else None)
        return _Answer(answer.status, answer.headers, answer.data)

    def _paged(self, path: str, key: str, scope: str) -> list[str]:
        items: list[str] = []
        url: str | None = "%s?n=%d" % (path, PAGE_SIZE)
        while url:
            response = self.request("GET", url, scope=scope)
            if response.status_code == 404:
                return items
            self._check(response, "GET " + path)
            items.extend(response.json().get(key) or [])
            match = _LINK_NEXT_RE.search(response.headers.get("Link", ""))
            url = match.group(1) if match else None
        return items

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code >= 400:
            raise RegistryError(
                "registry %s answered %d to %s: %s" % (self.registry, response.status_code, what, one_line(response.text)[:200])
            )

    # -- the questions ---------------------------------------------------------------
    def ping(self) -> int:
        """``GET /v2/``: 200 (anonymous), raises RegistryAuthError when credentials are refused."""
        response = self.request("GET", "/v2/")
        self._check(response, "GET /v2/")
        return response.status_code

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest ``repository:tag`` has in the registry, or None when it is absent."""
        path = "/v2/%s/manifests/%s" % (repository, tag)
        response = self.request("HEAD", path, scope="repository:%s:pull" % repository, headers={"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404:
            return None
        self._check(response, "HEAD " + path)
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            raise RegistryError("registry %s gave no Docker-Content-Digest for %s:%s" % (self.registry, repository, tag))
        return digest

    def manifest_config_digest(self, repository: str, reference: str) -> str | None:
        """The config digest of the image manifest ``repository@reference`` (the image ID the classic engine store
        gives that image), or None for an index, a schema1 manifest or an absent one."""
        path = "/v2/%s/manifests/%s" % (repository, reference)
        response = self.request("GET", path, scope="repository:%s:pull" % repository, headers={"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404:
            return None
        self._check(response, "GET " + path)
        try:
            body = response.json()
        except ValueError:
            return None
        config = body.get("config") if isinstance(body, dict) else None
        return config.get("digest") if isinstance(config, dict) else None

    def holds_image(self, repository: str, manifest_digest: str, image_id: str) -> bool:
        """Whether the manifest ``manifest_digest`` is the image ``image_id``: the same digest (containerd image
        store, where the image ID is the manifest digest) or a manifest whose config is that image (classic store)."""
        if manifest_digest == image_id:
            return True
        return self.manifest_config_digest(repository, manifest_digest) == image_id

    def tags(self, repository: str) -> list[str]:
        return self._paged("/v2/%s/tags/list" % repository, "tags", "repository:%s:pull" % repository)

    def catalog(self) -> list[str]:
        return self._paged("/v2/_catalog", "repositories", "registry:catalog:*")

    def manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]] | None:
        """The manifest ``repository:reference`` (a tag or a digest) read as JSON: (digest, media type, body),
        or None when it is absent."""
        try:
            found, body = self._read_manifest(repository, reference)
        except ManifestMissing:
            return None
        return found.digest, found.media_type, body

    def blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        """``GET`` a small JSON blob (an image configuration) of ``repository`` by digest."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        response = self._get(path, _pull(repository))
        self._check(response, "GET " + path)
        try:
            return response.json()
        except ValueError:
            raise RegistryError("registry %s sent blob %s of %s that is not JSON" % (self.registry, digest, repository)) from None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """``DELETE`` the manifest ``repository@digest`` (every tag pointing at it goes with it).

        True when deleted, False when it was already gone; raises RegistryDeleteDisabled when
        the registry refuses deletes."""
        path = "/v2/%s/manifests/%s" % (repository, digest)
        response = self.request("DELETE", path, scope="repository:%s:delete" % repository)
        if response.status_code == 404:
            return False
        if response.status_code == 405:
            raise RegistryDeleteDisabled(
                "registry %s refuses deletes (405): enable them with storage.delete.enabled"
                " (env REGISTRY_STORAGE_DELETE_ENABLED=true; the registry role's registry_delete_enabled)" % self.registry
            )
        self._check(response, "DELETE " + path)
        return True

    def map(self, call: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[call(item) for item in items]``, up to ``pool_size`` at once on this client's pooled session;
        the first error is raised once every call has ended."""
        items = list(items)
        if len(items) <= 1 or self.pool_size <= 1:
            return [call(item) for item in items]
        self.base_url  # noqa: B018 - probe the scheme once, before the threads start
        with ThreadPoolExecutor(max_workers=min(self.pool_size, len(items))) as pool:
            futures = [pool.submit(call, item) for item in items]
        return [future.result() for future in futures]

    # -- copying between registries (image_sync) ---------------------------------------
    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """``GET`` a manifest (tag or digest) as the registry stores it: bytes, media type, digest.

        The bytes are kept verbatim (never re-serialised): that is what keeps the digest when they are put elsewhere.
        Raises ManifestMissing when the registry does not hold it."""
        return self._read_manifest(repository, reference)[0]

    def _read_manifest(self, repository: str, reference: str) -> tuple[Manifest, Any]:
        """get_manifest, and the manifest parsed (once) as JSON."""
        path = "/v2/%s/manifests/%s" % (repository, reference)
        response = self._get(path, _pull(repository), ACCEPT_MANIFESTS)
        if response.status_code == 404:
            raise ManifestMissing("%s/%s:%s is not in the registry" % (self.registry, repository, reference))
        self._check(response, "GET " + path)
        data = response.content
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError("registry %s sent %s@%s with the digest %s" % (self.registry, repository, reference, digest))
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            body = json.loads(data)
            media_type = body.get("mediaType") or media_type
        except (ValueError, AttributeError):
            raise RegistryError("registry %s sent a manifest for %s:%s that is not JSON" % (self.registry, repository, reference)) from None
        return Manifest(data, media_type, digest), body

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """``PUT`` the manifest's bytes verbatim under ``reference`` (a tag or its digest); return the stored digest."""
        path = "/v2/%s/manifests/%s" % (repository, reference)
        response = self.request(
            "PUT", path, scope=_push(repository), headers={"Content-Type": manifest.media_type}, data=manifest.data
        )
        self._check_write(response, "PUT " + path)
        return response.headers.get("Docker-Content-Digest") or manifest.digest

    def has_blob(self, repository: str, digest: str) -> bool:
        """``HEAD /v2/<name>/blobs/<digest>``: does the repository hold (or may it use) the blob."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        response = self.request("HEAD", path, scope=_push(repository), allow_redirects=False)
        if response.status_code == 404:
            return False
        if response.status_code in (200, 307, 302):
            return True
        self._check(response, "HEAD " + path)
        return False

    def start_upload(self, repository: str, mount: str | None = None, mount_from: str | None = None) -> str | None:
        """Open a blob upload in ``repository``; with ``mount`` + ``mount_from`` ask for a cross-repository mount.

        Returns None when the blob was mounted (201), else the upload URL (202) to send the blob to."""
        path = "/v2/%s/blobs/uploads/" % repository
        scope = _push(repository)
        params = None
        if mount and mount_from:
            params = {"mount": mount, "from": mount_from}
            scope = "%s %s" % (scope, _pull(mount_from))
        response = self.request("POST", path, scope=scope, params=params, allow_redirects=False)
        if response.status_code == 201 and mount:
            return None
        if response.status_code != 202:
            self._check_write(response, "POST " + path)
            raise RegistryError("registry %s answered %d to POST %s" % (self.registry, response.status_code, path))
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("registry %s gave no upload Location for %s" % (self.registry, repository))
        return urljoin(self.base_url + path, location)

    def upload_blob(self, repository: str, location: str, digest: str, stream: BlobStream) -> None:
        """Finish an upload with one streamed ``PUT <location>?digest=`` (monolithic upload, bounded memory:
        the body is read from the source in CHUNK_SIZE pieces while it is sent)."""
        separator = "&" if "?" in location else "?"
        url = "%s%sdigest=%s" % (location, separator, digest)
        response = self.request(
            "PUT", url, scope=_push(repository), headers={"Content-Type": "application/octet-stream"}, data=stream,
            timeout=(self.timeout, max(self.timeout, 60.0)),
        )
        self._check_write(response, "PUT blob %s" % digest)

    def open_blob(self, repository: str, digest: str, size: int) -> BlobStream:
        """``GET`` a blob as a stream (redirects to storage followed); read it with ``read(n)``."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        response = self.request("GET", path, scope=_pull(repository), stream=True, timeout=(self.timeout, max(self.timeout, 60.0)))
        if response.status_code == 404:
            response.close()
            raise ManifestMissing("blob %s is not in %s/%s" % (digest, self.registry, repository))
        if response.status_code >= 400:
            response.close()
            self._check(response, "GET " + path)
        return BlobStream(response, size)

    def _check_write(self, response: requests.Response, what: str) -> None:
        """As _check, naming a registry that refuses every write (a pull-through cache answers 405 UNSUPPORTED)."""
        if response.status_code == 405 or (response.status_code >= 400 and "UNSUPPORTED" in response.text[:500]):
            raise RegistryReadOnly(
                "registry %s refuses writes (HTTP %d to %s): it is a pull-through cache or read-only; "
                "push to its upstream instead" % (self.registry, response.status_code, what.split(" ", 1)[0])
            )
        self._check(response, what)


def wait_ready(address: str, scheme: str, timeout: float, still_running: Callable[[], bool] | None = None) -> float:
    """Wait until ``GET /v2/`` answers 200 or 401 (auth on) at ``address``; return the seconds waited.

    Raises RegistryUnreachable after ``timeout`` seconds, or as soon as
    ``still_running`` says the process behind the address has gone.
    """
    started = time.monotonic()
    session = requests.Session()
    last = "no answer"
    while True:
        try:
            answer = session.get("%s://%s/v2/" % (scheme, address), timeout=2, verify=False)
            if answer.status_code in (200, 401):
                return time.monotonic() - started
            last = "HTTP %d" % answer.status_code
        except requests.exceptions.RequestException as exc:
            last = _reason(exc)
        if still_running is not None and not still_running():
            raise RegistryUnreachable("registry at %s stopped before it answered /v2/ (%s)" % (address, last))
        if time.monotonic() - started > timeout:
            raise RegistryUnreachable("registry at %s did not answer /v2/ within %ss (%s)" % (address, timeout, last))
        time.sleep(0.2)


class Credentials:
    """Registry credentials: the ones given, else the ones the engine client has stored."""

    def __init__(
        self,
        username: str | None,
        password: str | None,
        stored: Callable[[str], dict[str, str] | None] = lambda registry: None,
    ) -> None:
        self.username = username
        self.password = password
        self.stored = stored

    def for_registry(self, registry: str) -> tuple[str | None, str | None]:
        if self.username:
            return self.username, self.password
        stored = self.stored(registry) or {}
        return stored.get("username") or stored.get("Username"), stored.get("password") or stored.get("Password")

    def auth_config(self, registry: str) -> dict[str, str] | None:
        """What the engine's push call takes (None: let the engine client use its own configuration)."""
        username, password = self.for_registry(registry)
        if not username:
            return None
        return {"username": username, "password": password or "", "serveraddress": registry}

    def client_factory(self, **options: Any) -> Callable[[str], RegistryClient]:
        def make(registry: str) -> RegistryClient:
            username, password = self.for_registry(registry)
            return RegistryClient(registry, username, password, **options)

        return make
