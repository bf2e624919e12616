# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One client for the Docker Registry HTTP API v2 (distribution 2.x and 3.x).

Every question the collection asks a registry goes through :class:`RegistryClient`:
is it up (``/v2/``), which digest does ``<name>:<tag>`` have (manifest ``HEAD``),
which tags and repositories does it hold (``tags/list`` and ``_catalog``, paged), what a
manifest and an image configuration hold (manifest ``GET``, config blob ``GET``), and the one
deletion the registry API offers (manifest ``DELETE`` by digest). :meth:`RegistryClient.map`
runs many of these questions at once over the client's one pooled session.

How a request is sent (scheme, TLS, proxies, auth, errors) is transport.py's Transport, which RegistryClient
is built on: this file says which requests the API takes and what their answers mean.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urljoin

from ansible_collections.dockhand.registry.plugins.module_utils.common import (
    check_timeout,
    check_workers,
    one_line,
)
from ansible_collections.dockhand.registry.plugins.module_utils.storage_errors import (
    RegistryStorageError,
    storage_cause,
    storage_message,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import (
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    Transport,
)

if TYPE_CHECKING:
    import requests

# The manifests of one image (one platform), and the indexes that list several (a multi-platform image).
IMAGE_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
# With fewer types in Accept, distribution 2.8 may convert a schema2 manifest to
# schema1 (a different digest), and an OCI manifest may read as missing.
MANIFEST_MEDIA_TYPES = (
    IMAGE_MEDIA_TYPES[0],
    INDEX_MEDIA_TYPES[0],
    IMAGE_MEDIA_TYPES[1],
    INDEX_MEDIA_TYPES[1],
)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
PAGE_SIZE = 1000
T = TypeVar("T")
R = TypeVar("R")

_LINK_NEXT_RE = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


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


class RegistryClient(Transport):
    """The registry API of one registry, on a :class:`Transport` (which takes the connection options)."""

    def _paged(self, path: str, key: str, scope: str, max_pages: int | None = None) -> list[str] | None:
        """Every item of a paged listing; [] when the registry answers 404. With ``max_pages``: None when the
        listing has more pages than that."""
        items: list[str] = []
        url: str | None = "%s?n=%d" % (path, PAGE_SIZE)
        pages = 0
        while url:
            if max_pages is not None and pages >= max_pages:
                return None
            pages += 1
            response = self.get(url, scope)
            if response.status_code == 404:
                return items
            if response.status_code == 400 and "PAGINATION_NUMBER_INVALID" in response.text and "n=" in url:
                # The registry pages by fewer (catalog.maxentries below PAGE_SIZE): ask for its own page size, and
                # follow its Link header from there.
                url = re.sub(r"([?&])n=\d+&?", r"\1", url).rstrip("?&")
                continue
            self._check(response, "GET " + path)
            items.extend(response.json().get(key) or [])
            match = _LINK_NEXT_RE.search(response.headers.get("Link", ""))
            url = match.group(1) if match else None
        return items

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code >= 500:
            # The registry's error body names a storage failure (a full disk...): say that, not the HTTP status.
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            cause = storage_cause(body)
            if cause:
                raise RegistryStorageError(storage_message(self.registry, cause))
        if response.status_code >= 400:
            hint = ""
            if response.status_code == 500 and "/manifests/" in what and not what.startswith(("PUT", "DELETE")):
                # A registry killed while it wrote a tag leaves its link empty; reading the tag then fails so
                # ("invalid checksum digest format" in the registry's log).
                hint = " (a tag whose files a crash cut answers so: registry_gc removes such dangling tags)"
            raise RegistryError(
                "registry %s answered %d to %s: %s%s"
                % (self.registry, response.status_code, what, one_line(response.text)[:200], hint)
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
        response = self.fast("HEAD", path, _pull(repository), {"Accept": ACCEPT_MANIFESTS})
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
        return self._paged("/v2/%s/tags/list" % repository, "tags", _pull(repository)) or []

    def repository_tags(self, repository: str) -> list[str] | None:
        """The tags of ``repository``, or None when the registry does not know the repository (404 NAME_UNKNOWN:
        distribution's answer for a repository nothing was ever tagged in)."""
        path = "/v2/%s/tags/list" % repository
        response = self.get("%s?n=%d" % (path, PAGE_SIZE), _pull(repository))
        if response.status_code == 404:
            return None if "NAME_UNKNOWN" in response.text[:500] else []
        self._check(response, "GET " + path)
        tags = list(response.json().get("tags") or [])
        if _LINK_NEXT_RE.search(response.headers.get("Link", "")):
            return self.tags(repository)  # more than one page: the whole listing
        return tags

    def catalog(self, max_pages: int | None = None) -> list[str] | None:
        """The registry's repositories; with ``max_pages``, None when the catalog is longer than that."""
        return self._paged("/v2/_catalog", "repositories", "registry:catalog:*", max_pages)

    def manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]] | None:
        """The manifest ``repository:reference`` (a tag or a digest) read as JSON: (digest, media type, body),
        or None when it is absent."""
        found = self.read_manifest(repository, reference)
        return None if found is None else (found[0].digest, found[0].media_type, found[1])

    def read_manifest(self, repository: str, reference: str) -> tuple[Manifest, Any] | None:
        """The manifest ``repository:reference`` as stored (bytes, media type, digest) and parsed, or None when it
        is absent: what can be put back verbatim (:meth:`put_manifest`) after a delete."""
        try:
            return self._read_manifest(repository, reference)
        except ManifestMissing:
            return None

    def blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        """``GET`` a small JSON blob (an image configuration) of ``repository`` by digest."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        response = self.get(path, _pull(repository))
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

    def probe_write(self, repository: str) -> None:
        """Open a blob upload in ``repository`` and cancel it: raises what a write meets there (a full or read-only
        storage, a refused login, a read-only registry), naming the cause."""
        location = self.start_upload(repository)
        if location:
            self.request("DELETE", location, scope=_push(repository))

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
        response = self.get(path, _pull(repository), ACCEPT_MANIFESTS)
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
        response = self.fast("PUT", path, _push(repository), {"Content-Type": manifest.media_type}, manifest.data)
        self._check_write(response, "PUT " + path)
        return response.headers.get("Docker-Content-Digest") or manifest.digest

    def has_blob(self, repository: str, digest: str) -> bool:
        """``HEAD /v2/<name>/blobs/<digest>``: does the repository hold (or may it use) the blob."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        response = self.fast("HEAD", path, _push(repository))
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
        response = self.fast("POST", path, scope, params=params)
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
        response = self.fast(
            "PUT", url, _push(repository), {"Content-Type": "application/octet-stream"}, stream, read_timeout=max(self.timeout, 60.0)
        )
        self._check_write(response, "PUT blob %s" % digest)

    def open_blob(self, repository: str, digest: str, size: int) -> BlobStream:
        """``GET`` a blob as a stream (redirects to storage followed); read it with ``read(n)``."""
        path = "/v2/%s/blobs/%s" % (repository, digest)
        response = self.fast("GET", path, _pull(repository), stream=True, read_timeout=max(self.timeout, 60.0))
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


def steady(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, asked again (up to 5 times, a few tens of milliseconds apart) when the registry answers an error of
    its own: distribution 2.8 answers HTTP 500 ("invalid checksum digest format") to a request that reads a tag link
    another client is writing at that instant (a manifest read by tag, a delete, which reads every tag of the
    repository). No answer, refused credentials or refused deletes end it at once. Only for calls that may be sent
    twice: reads, and writes that leave the same state when repeated."""
    for attempt in range(4):
        try:
            return call(*args)
        except (RegistryUnreachable, RegistryAuthError, RegistryDeleteDisabled, ManifestMissing):
            raise
        except RegistryError:
            time.sleep(0.02 * (attempt + 1))
    return call(*args)


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


# -- clients from module parameters ------------------------------------------------------
def client_factory(
    params: dict[str, Any], side: str = "", pool_size: int | None = None, credentials: Credentials | None = None
) -> Callable[[str], RegistryClient]:
    """RegistryClients (one per registry address) as a module's options describe them: ``workers`` (checked
    first: 1 to MAX_WORKERS; the pool size unless ``pool_size`` is given), ``registry_timeout``, and the
    REGISTRY_ARGSPEC options, named ``<side>username``, ``<side>registry_scheme``... (image_sync's ``src_`` and
    ``dest_``). ``credentials``: the login to use (default: ``<side>username`` and ``<side>password``)."""
    workers = check_workers(params["workers"])
    check_timeout("registry_timeout", params["registry_timeout"])
    if credentials is None:
        credentials = Credentials(params[side + "username"], params[side + "password"])
    scheme = params[side + "registry_scheme"]
    return credentials.client_factory(
        scheme=None if scheme == "auto" else scheme,
        ca_cert=params[side + "registry_ca_cert"],
        validate_certs=params[side + "registry_validate_certs"],
        timeout=params["registry_timeout"],
        pool_size=pool_size or workers,
    )


def client_from_params(params: dict[str, Any]) -> RegistryClient:
    """The RegistryClient of the ``registry`` a module names (registry_info, registry_prune; REGISTRY_API_ARGSPEC)."""
    return client_factory(params)(params["registry"])
