# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection talks HTTP to a registry: one place for the scheme, TLS, proxies, auth and errors.

:class:`Transport` sends requests to one registry on one pooled ``requests`` session, and GETs the many small
reads (manifests, image configurations) on a fast path: urllib3 straight on that session's own connection pool.
Both paths share everything that decides how a request is sent and what its failure means:

- the scheme (``https``; plain HTTP only when asked for, or probed on a loopback address: :meth:`Transport.base_url`),
- TLS: ``validate_certs`` and ``ca_cert`` (:attr:`Transport.verify`, given with every request, and the fast path's
  pool built with requests' own TLS settings),
- proxies: when one applies to the registry (HTTP(S)_PROXY without NO_PROXY) every request goes through requests,
- auth: one answer to a 401 challenge (Basic, or a Bearer token per scope; :meth:`Transport._exchange`), and the
  refusal to send a password over plain HTTP unless ``scheme`` is ``http`` (:meth:`Transport._check_clear_text`),
- errors: no answer is :class:`RegistryUnreachable`, refused credentials :class:`RegistryAuthError`, one line each.

The registry API (which paths, what the answers mean) is :class:`registry.RegistryClient`, built on this.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

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

# What a module passes to common.run_module to check that requests is there.
HAS_REQUESTS = REQUESTS_IMPORT_ERROR is None
REQUESTS_LIBRARY = ("requests", HAS_REQUESTS, REQUESTS_IMPORT_ERROR)

USER_AGENT = "dockhand.registry"
_UNBUILT = object()
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
# Python's own words inside urllib3's nested reprs: ConnectionResetError(104, 'Connection reset by peer'),
# RemoteDisconnected('Remote end closed connection without response'), and the
# TLS library's ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ... (_ssl.c:1006)).
_OS_ERROR_RE = re.compile(r"(?:Error\(-?\d+, |RemoteDisconnected\()'([^']+)'\)")
_SSL_RE = re.compile(r"(\[SSL: [A-Z0-9_]+\] [^'\"]*?)(?: \(_ssl\.c:\d+\))?['\"]")
_UNTRUSTED = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")
_UNRESOLVED = ("Name or service not known", "Temporary failure in name resolution", "No address associated with hostname",
               "nodename nor servname")


class RegistryError(DockhandError):
    """The registry answered something other than what the call needs."""


class RegistryUnreachable(RegistryError):
    """No HTTP answer from the registry (connection refused, TLS failure, time-out)."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or wants some and none were given)."""


def _reason(exc: Exception) -> str:
    """The cause of a requests (or urllib3) error in a few words ("Connection refused"), not urllib3's nested reprs."""
    text = one_line(exc)
    match = _ERRNO_RE.search(text) or _SSL_RE.search(text) or _OS_ERROR_RE.search(text)
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


class _Stream:
    """A 2xx answer of the fast path whose body is still to be read (a blob): ``raw.read(n)``, then ``close()``."""

    __slots__ = ("headers", "raw", "status_code")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.status_code = raw.status
        self.headers = raw.headers

    def close(self) -> None:
        # Read to its end: the connection goes back to the pool for the next request; else it is closed.
        if self.raw.length_remaining == 0:
            self.raw.release_conn()
        else:
            self.raw.close()


# Errors of each path that mean "no answer": requests' own, and on the fast path urllib3's and what http.client
# raises beneath it (a bad status line, a URL it refuses).
_REQUESTS_ERRORS: tuple[type[Exception], ...] = ()
_FAST_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError)
if REQUESTS_IMPORT_ERROR is None:
    import http.client

    _REQUESTS_ERRORS = (requests.exceptions.RequestException,)
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


class Transport:
    """HTTP to one registry.

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
        # The fast GET path (see get): urllib3 straight on the connection pool of this client's own session.
        # Built at the first GET; None when the session was given (tests' stand-ins) or a proxy is configured.
        self._own_session = own_session
        self._pool: Any = _UNBUILT
        self._basic_header = ""
        # Passed with every request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        # from the environment (requests merges those over it), which would ignore ``ca_cert``.
        self.verify: str | bool = ca_cert if (ca_cert and validate_certs) else bool(validate_certs)
        self.session.verify = self.verify
        self.session.headers["User-Agent"] = USER_AGENT

    # -- the scheme -------------------------------------------------------------------
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
                errors.append("%s: %s" % (scheme, _reason(exc)))
            except requests.exceptions.RequestException as exc:
                errors.append("%s: %s" % (scheme, _reason(exc)))
                if scheme == "https" and not isinstance(exc, requests.exceptions.ConnectionError):
                    break
        if any(word in error for error in errors for word in _UNTRUSTED):
            # A TLS registry whose certificate is not trusted: plain HTTP is no answer to that.
            hint = "; its certificate is not trusted: give the CA that issued it as registry_ca_cert"
        elif any(word in error for error in errors for word in _UNRESOLVED):
            hint = "; its host name does not resolve here (check the name, DNS or /etc/hosts)"
        elif len(schemes) > 1:
            hint = ""
        else:
            hint = "; plain HTTP is tried only for loopback addresses: give registry_scheme http to use it"
        raise RegistryUnreachable(
            "registry %s is unreachable (%s)%s" % (self.registry, one_line("; ".join(errors)), hint)
        )

    # -- auth -------------------------------------------------------------------------
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

    def _answer_challenge(self, response: Any, scope: str, url: str) -> None:
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

    def _exchange(self, send: Callable[[], Any], scope: str, url: str, errors: tuple[type[Exception], ...]) -> Any:
        """``send()`` once; on a 401 answer the challenge (once for all threads) and send again. No answer
        (one of ``errors``) is RegistryUnreachable, a second 401 RegistryAuthError."""
        try:
            response = send()
            if response.status_code == 401:
                with self._lock:
                    self._answer_challenge(response, scope, url)
                response = send()
                if response.status_code == 401:
                    raise self._refused()
        except errors as exc:
            raise RegistryUnreachable("registry %s is unreachable: %s" % (self.registry, _reason(exc))) from None
        return response

    # -- the requests path: every method, streams, redirects --------------------------
    def request(self, method: str, path: str, scope: str = "", **kwargs) -> requests.Response:
        """Send one request to the registry, answering an auth challenge once if there is one."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.verify)
        headers = kwargs.pop("headers", None) or {}

        def send() -> requests.Response:
            sent = dict(headers)
            if scope in self._tokens:
                sent["Authorization"] = "Bearer " + self._tokens[scope]
            auth = (self.username, self.password) if self._basic else None
            return self.session.request(method, url, headers=sent, auth=auth, **kwargs)

        return self._exchange(send, scope, url, _REQUESTS_ERRORS)

    # -- the fast path: manifests, configurations and image_sync's copies, thousands at once ----------
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

    def _fast_send(
        self, pool: Any, method: str, path: str, scope: str, headers: dict[str, str] | None, body: Any, stream: bool, read_timeout: float | None
    ) -> Any:
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
        if headers:
            sent.update(headers)
        if body is not None and not isinstance(body, (bytes, str)):
            sent["Content-Length"] = str(len(body))  # a file-like body streams as one request of this length
        token = self._tokens.get(scope)
        if token is not None:
            sent["Authorization"] = "Bearer " + token
        elif self._basic:
            sent["Authorization"] = self._basic_header
        timeout = self._fast_timeout if read_timeout is None else urllib3.Timeout(connect=self.timeout, read=read_timeout)
        # RequestMethods.request: without fields, the request goes straight to the pool's own call, body and all.
        answer = pool.request(
            method, path, body=body, headers=sent, retries=False, redirect=False, timeout=timeout,
            preload_content=not stream, assert_same_host=False,
        )
        if stream and answer.status < 300:
            return _Stream(answer)
        return _Answer(answer.status, answer.headers, answer.data)

    def fast(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> Any:
        """One request on the fast path: urllib3 straight on this client's pool (about half the client CPU of
        requests per request). ``path`` may be a URL of this registry (an upload Location). A GET's redirect (a blob
        held in object storage) is followed by requests; other methods' are not (the caller sees the 3xx).
        ``stream``: a 2xx body is left unread (``raw.read(n)``, then ``close()``). Without a pool (a session given
        from outside, a proxy from the environment) or for a URL on another host, the request goes through
        :meth:`request`."""
        pool = self._fast_pool()
        base = self.base_url
        if path.startswith(("http://", "https://")):
            if path.startswith(base + "/"):
                path = path[len(base):]
            else:
                pool = None
        answer = None
        if pool is not None:
            target = requote_uri(path + ("?" + urlencode(params) if params else ""))
            answer = self._exchange(
                lambda: self._fast_send(pool, method, target, scope, headers, body, stream, read_timeout),
                scope, base + target, _FAST_ERRORS,
            )
            if not (method == "GET" and 300 <= answer.status_code < 400):
                return answer
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": method == "GET", "stream": stream}
        if body is not None:
            kwargs["data"] = body
        if params:
            kwargs["params"] = params
        if read_timeout is not None:
            kwargs["timeout"] = (self.timeout, read_timeout)
        return self.request(method, path, scope=scope, **kwargs)

    def get(self, path: str, scope: str, accept: str | None = None) -> Any:
        """``GET path`` with the body read: the hot path of registry_info (one request per manifest and per
        configuration) and image_sync; answers an auth challenge once as :meth:`request` does."""
        return self.fast("GET", path, scope, {"Accept": accept} if accept else None)


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
