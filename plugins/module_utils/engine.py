# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One wrapper around the Docker SDK: every call the collection makes to the engine.

Errors of the SDK and of the engine's JSON streams (push, pull, build, load) become
:class:`EngineError`, whose text is one line naming what failed.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    from docker.tls import TLSConfig
    from docker.types import Mount

    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the modules through missing_required_lib
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):  # type: ignore[no-redef]
        pass

    class APIError(DockerException):  # type: ignore[no-redef]
        pass

    class NotFound(APIError):  # type: ignore[no-redef]
        pass


def _api_client(**kwargs: Any) -> Any:
    """``docker.APIClient`` that verifies the engine's certificate with the CA the options name.

    The client is a requests Session, and requests merges REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the
    environment over a Session's ``verify`` (the CA path TLSConfig set), so a TLS engine with a private CA would be
    checked against the system bundle. The environment keeps its say on proxies, not on the engine's CA.
    """

    class APIClient(docker.APIClient):
        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings["verify"] = self.verify
            return settings

    return APIClient(**kwargs)


# What a module passes to common.run_module to check that the SDK is there.
HAS_DOCKER = DOCKER_IMPORT_ERROR is None
DOCKER_LIBRARY = ("docker", HAS_DOCKER, DOCKER_IMPORT_ERROR)


class EngineError(DockhandError):
    """The engine refused or failed a call."""


def _explain(exc: Exception) -> str:
    if isinstance(exc, APIError) and getattr(exc, "explanation", None):
        return one_line(exc.explanation)
    return one_line(exc)


def _stream_error(chunk: dict[str, Any]) -> str | None:
    if "error" in chunk or "errorDetail" in chunk:
        detail = chunk.get("errorDetail") or {}
        return one_line(detail.get("message") or chunk.get("error") or "unknown error")
    return None


def _read_stream(chunks: Iterable[dict[str, Any]], failed: str) -> Iterator[dict[str, Any]]:
    """The chunks of one of the engine's JSON streams (push, pull, load, build), raising EngineError
    ``<failed>: <the engine's message>`` at the first error chunk."""
    for chunk in chunks:
        error = _stream_error(chunk)
        if error and "HTTP 405" in error and "Method not allowed" in error:
            # distribution in maintenance mode (storage.maintenance.readonly) answers every write 405.
            error = "the registry is read-only (maintenance mode, e.g. a garbage collection): push again after it"
        elif error and error.strip().lower() == "unsupported":  # distribution's 405 UNSUPPORTED, as the engine says it
            error += " (the registry refuses pushes: a pull-through cache or read-only; push to its upstream)"
        if error:
            raise EngineError("%s: %s" % (failed, error))
        yield chunk


def stored_credentials(registry: str) -> dict[str, str] | None:
    """Credentials the engine client's configuration (~/.docker/config.json) holds for ``registry``."""
    try:
        return docker.auth.load_config().resolve_authconfig(registry)
    except (DockerException, OSError, ValueError):
        return None


def tls_settings(
    tls: bool = False,
    validate_certs: bool = False,
    ca_path: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    cert_dir: str | None = None,
) -> dict[str, Any] | None:
    """The TLS settings to reach the engine with, as community.docker takes them; None for no TLS.

    ``validate_certs`` implies TLS. ``cert_dir`` (E(DOCKER_CERT_PATH)) gives ``ca.pem``, ``cert.pem`` and
    ``key.pem`` to the options not given, where those files exist. Raises EngineError for a half-given client
    certificate or a file that is not there, naming it.
    """
    if not (tls or validate_certs):
        return None
    if cert_dir:
        defaults = {"ca_path": "ca.pem", "client_cert": "cert.pem", "client_key": "key.pem"}
        found = {key: os.path.join(cert_dir, name) for key, name in defaults.items()}
        found = {key: path for key, path in found.items() if os.path.isfile(path)}
        ca_path = ca_path or found.get("ca_path")
        client_cert = client_cert or found.get("client_cert")
        client_key = client_key or found.get("client_key")
    if bool(client_cert) != bool(client_key):
        raise EngineError("client_cert and client_key go together: got only %s" % ("client_cert" if client_cert else "client_key"))
    for option, path in (("ca_path", ca_path if validate_certs else None), ("client_cert", client_cert), ("client_key", client_key)):
        if path and not os.path.isfile(path):
            raise EngineError("%s %s: no such file" % (option, path))
    return {
        "client_cert": (client_cert, client_key) if client_cert else None,
        "ca_cert": ca_path if validate_certs else None,
        "verify": bool(validate_certs),
    }


class EngineClient:
    """The Docker engine behind ``docker_host``."""

    def __init__(
        self, docker_host: str | None = None, timeout: int = 120, api: Any = None, tls: dict[str, Any] | None = None
    ) -> None:
        # A local engine (unix socket) publishes ports on this host: callers may probe them here.
        self.local = api is None and (not docker_host or docker_host.startswith("unix://"))
        if api is not None:
            self.api = api
            return
        try:
            tls_config = TLSConfig(**tls) if tls else False
            self.api = _api_client(base_url=docker_host, version="auto", timeout=timeout, tls=tls_config)
        except DockerException as exc:
            raise EngineError("cannot reach the Docker engine at %s: %s" % (docker_host, _explain(exc))) from None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EngineClient:
        """The engine a module's DOCKER_ARGSPEC options name (engine host, timeout, TLS)."""
        if params["timeout"] < 1:
            raise EngineError("timeout must be at least 1 second, got %d" % params["timeout"])
        tls = tls_settings(
            params["tls"],
            params["validate_certs"],
            params["ca_path"],
            params["client_cert"],
            params["client_key"],
            os.environ.get("DOCKER_CERT_PATH"),
        )
        return cls(params["docker_host"], params["timeout"], tls=tls)

    @staticmethod
    def _inspect(what: str, name: str, call: Callable[[str], dict[str, Any]]) -> dict[str, Any] | None:
        """``docker <what> inspect name``; None when the engine has no such object."""
        try:
            return call(name)
        except NotFound:
            return None
        except DockerException as exc:
            raise EngineError("cannot inspect %s %s: %s" % (what, name, _explain(exc))) from None

    # -- images ---------------------------------------------------------------------
    def image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect``; None when the engine has no such image."""
        return self._inspect("image", ref, self.api.inspect_image)

    def image_index(self) -> dict[str, dict[str, Any]]:
        """Every local image by each of its tags (``repo:tag``), from one ``docker images`` call."""
        try:
            summaries = self.api.images()
        except DockerException as exc:
            raise EngineError("cannot list images: %s" % _explain(exc)) from None
        index: dict[str, dict[str, Any]] = {}
        for summary in summaries:
            for tag in summary.get("RepoTags") or []:
                index[tag] = summary
        return index

    def image_id(self, ref: str) -> str | None:
        attrs = self.image(ref)
        return attrs["Id"] if attrs else None

    def tag(self, image: str, repository: str, tag: str) -> None:
        try:
            self.api.tag(image, repository, tag, force=True)
        except DockerException as exc:
            raise EngineError("cannot tag %s as %s:%s: %s" % (image, repository, tag, _explain(exc))) from None

    def remove_image(self, ref: str) -> None:
        try:
            self.api.remove_image(ref)
        except NotFound:
            return
        except DockerException as exc:
            raise EngineError("cannot remove image %s: %s" % (ref, _explain(exc))) from None

    def push(self, repository: str, tag: str, auth_config: dict[str, str] | None = None) -> str:
        """Push ``repository:tag``; return the manifest digest the registry recorded."""
        digest = None
        try:
            chunks = self.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth_config)
            for chunk in _read_stream(chunks, "push of %s:%s refused" % (repository, tag)):
                digest = (chunk.get("aux") or {}).get("Digest") or digest
        except DockerException as exc:
            raise EngineError("push of %s:%s failed: %s" % (repository, tag, _explain(exc))) from None
        if not digest:
            raise EngineError("push of %s:%s ended without a digest from the engine" % (repository, tag))
        return digest

    def pull(self, repository: str, tag: str, auth_config: dict[str, str] | None = None) -> str:
        """Pull ``repository:tag`` (or ``repository@digest`` when ``tag`` is a digest); return the local image ID."""
        sep = "@" if ":" in tag else ":"
        try:
            chunks = self.api.pull(repository, tag=tag, stream=True, decode=True, auth_config=auth_config)
            for _chunk in _read_stream(chunks, "pull of %s%s%s failed" % (repository, sep, tag)):
                pass
        except DockerException as exc:
            raise EngineError("pull of %s%s%s failed: %s" % (repository, sep, tag, _explain(exc))) from None
        image_id = self.image_id("%s%s%s" % (repository, sep, tag))
        if not image_id:
            raise EngineError("pull of %s%s%s ended with no such image in the engine" % (repository, sep, tag))
        return image_id

    def load(self, archive: str) -> list[str]:
        """``docker load`` an archive of ``docker save``; return what the engine said it loaded."""
        loaded: list[str] = []
        try:
            with open(archive, "rb") as handle:
                for chunk in _read_stream(self.api.load_image(handle), "cannot load image archive %s" % archive):
                    text = chunk.get("stream", "")
                    for prefix in ("Loaded image: ", "Loaded image ID: "):
                        if text.startswith(prefix):
                            loaded.append(text[len(prefix):].strip())
        except OSError as exc:
            raise EngineError("cannot read image archive %s: %s" % (archive, exc.strerror or exc)) from None
        except DockerException as exc:
            raise EngineError("cannot load image archive %s: %s" % (archive, _explain(exc))) from None
        return loaded

    def build(
        self,
        path: str,
        tag: str,
        dockerfile: str | None = None,
        buildargs: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        """``docker build`` the context at ``path`` as ``tag`` (with ``labels``); return the image ID."""
        image_id = None
        try:
            chunks = self.api.build(
                path=path,
                tag=tag,
                dockerfile=dockerfile,
                buildargs=buildargs,
                rm=True,
                forcerm=True,
                decode=True,
                labels=labels or None,
            )
            for chunk in _read_stream(chunks, "build of %s from %s failed" % (tag, path)):
                image_id = (chunk.get("aux") or {}).get("ID") or image_id
        except DockerException as exc:
            raise EngineError("build of %s from %s failed: %s" % (tag, path, _explain(exc))) from None
        return image_id or self.image_id(tag) or ""

    # -- containers -----------------------------------------------------------------
    def container(self, name: str) -> dict[str, Any] | None:
        """``docker container inspect``; None when there is no such container."""
        return self._inspect("container", name, self.api.inspect_container)

    def create_container(
        self,
        name: str,
        image: str,
        env: dict[str, str],
        port_bindings: dict[str, tuple[str, int]],
        mounts: Iterable[dict[str, Any]],
        restart_policy: dict[str, Any],
        labels: dict[str, str] | None = None,
        read_only: bool = False,
        cap_drop: list[str] | None = None,
        cap_add: list[str] | None = None,
        security_opt: list[str] | None = None,
        tmpfs: dict[str, str] | None = None,
        command: list[str] | None = None,
        stop_timeout: int | None = None,
    ) -> str:
        """``docker container create``; ``stop_timeout``: the seconds ``docker stop`` (any caller's) waits before
        SIGKILL; ``tmpfs``: in-memory mounts (path -> options)."""
        try:
            host_config = self.api.create_host_config(
                port_bindings={port: (ip, host_port) for port, (ip, host_port) in port_bindings.items()},
                mounts=[
                    Mount(m["target"], m["source"], type=m["type"], read_only=m.get("read_only", False)) for m in mounts
                ],
                restart_policy=restart_policy,
                read_only=read_only or None,
                cap_drop=cap_drop or None,
                cap_add=cap_add or None,
                security_opt=security_opt or None,
                tmpfs=tmpfs or None,
            )
            created = self.api.create_container(
                image,
                command=command or None,
                name=name,
                environment=env,
                # (number, protocol): the SDK would read "5001/tcp" as port "5001/tcp" of protocol tcp.
                ports=[(int(port.split("/")[0]), port.split("/")[1] if "/" in port else "tcp") for port in port_bindings],
                host_config=host_config,
                labels=labels or {},
                stop_timeout=stop_timeout,
            )
        except DockerException as exc:
            raise EngineError("cannot create container %s: %s" % (name, _explain(exc))) from None
        return created["Id"]

    def _container_call(self, what: str, container: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(container, *args, **kwargs)
        except DockerException as exc:
            raise EngineError("cannot %s container %s: %s" % (what, container, _explain(exc))) from None

    def start(self, container: str) -> None:
        self._container_call("start", container, self.api.start)

    def stop(self, container: str, timeout: int = 10) -> None:
        self._container_call("stop", container, self.api.stop, timeout=timeout)

    def remove_container(self, container: str) -> None:
        self._container_call("remove", container, self.api.remove_container, force=True)

    def rename(self, container: str, name: str) -> None:
        self._container_call("rename", container, self.api.rename, name)

    def update_restart_policy(self, container: str, restart_policy: dict[str, Any]) -> None:
        self._container_call("update", container, self.api.update_container, restart_policy=restart_policy)

    def exec_run(self, container: str, command: list[str]) -> tuple[int, str]:
        """Run ``command`` in the running ``container`` (with its environment); return (exit code, output)."""
        try:
            created = self.api.exec_create(container, command, stdout=True, stderr=True)
            output = self.api.exec_start(created["Id"], stream=False, demux=False) or b""
            code = self.api.exec_inspect(created["Id"]).get("ExitCode")
        except DockerException as exc:
            raise EngineError("cannot run %s in container %s: %s" % (" ".join(command), container, _explain(exc))) from None
        return (code if code is not None else -1), output.decode("utf-8", "replace")

    def logs(self, container: str, tail: int | str = 5, since: int | None = None) -> str:
        """The container's last ``tail`` log lines (``"all"``: every line), from ``since`` (Unix time) on."""
        try:
            options: dict[str, Any] = {"tail": tail}
            if since is not None:
                options["since"] = since
            return self.api.logs(container, **options).decode("utf-8", "replace")
        except DockerException:
            return ""

    # -- volumes --------------------------------------------------------------------
    def volume(self, name: str) -> dict[str, Any] | None:
        """``docker volume inspect``; None when there is no such volume."""
        return self._inspect("volume", name, self.api.inspect_volume)

    def create_volume(self, name: str) -> None:
        try:
            self.api.create_volume(name)
        except DockerException as exc:
            raise EngineError("cannot create volume %s: %s" % (name, _explain(exc))) from None

    # -- swarm ------------------------------------------------------------------------
    # Every call exists in docker SDK 5.0.3 (Debian 12's python3-docker) and 7.x; specs are passed as the engine's
    # own JSON (dicts), so no SDK type whose arguments changed between versions is needed.
    def swarm_state(self) -> dict[str, Any]:
        """The ``Swarm`` part of ``docker info``: LocalNodeState, NodeID, ControlAvailable, Cluster, RemoteManagers."""
        try:
            return self.api.info().get("Swarm") or {}
        except DockerException as exc:
            raise EngineError("cannot read the engine's swarm state: %s" % _explain(exc)) from None

    def swarm(self) -> dict[str, Any]:
        """``docker swarm inspect`` (managers only): ID, JoinTokens, Spec."""
        try:
            return self.api.inspect_swarm()
        except DockerException as exc:
            raise EngineError("cannot inspect the swarm: %s" % _explain(exc)) from None

    def swarm_init(self, advertise_addr: str | None, listen_addr: str) -> None:
        try:
            self.api.init_swarm(advertise_addr=advertise_addr, listen_addr=listen_addr)
        except DockerException as exc:
            raise EngineError("cannot initialise a swarm: %s" % _explain(exc)) from None

    def swarm_join(self, remote_addrs: list[str], join_token: str, advertise_addr: str | None, listen_addr: str) -> None:
        try:
            self.api.join_swarm(remote_addrs, join_token, listen_addr=listen_addr, advertise_addr=advertise_addr)
        except DockerException as exc:
            # The engine's message never holds the token; say which manager was asked.
            raise EngineError("cannot join the swarm of %s: %s" % (", ".join(remote_addrs), _explain(exc))) from None

    def nodes(self) -> list[dict[str, Any]]:
        try:
            return self.api.nodes()
        except DockerException as exc:
            raise EngineError("cannot list the swarm's nodes: %s" % _explain(exc)) from None

    def update_node(self, node_id: str, version: int, spec: dict[str, Any]) -> None:
        try:
            self.api.update_node(node_id, version, spec)
        except DockerException as exc:
            raise EngineError("cannot update swarm node %s: %s" % (node_id, _explain(exc))) from None

    def service(self, name: str) -> dict[str, Any] | None:
        """``docker service inspect``; None when there is no such service."""
        try:
            return self.api.inspect_service(name)
        except NotFound:
            return None
        except DockerException as exc:
            raise EngineError("cannot inspect service %s: %s" % (name, _explain(exc))) from None

    @staticmethod
    def _service_arguments(spec: dict[str, Any]) -> dict[str, Any]:
        """The docker SDK's keyword arguments of create_service/update_service for a service ``spec``."""
        return {
            "name": spec["Name"],
            "labels": spec.get("Labels"),
            "mode": spec.get("Mode"),
            "update_config": spec.get("UpdateConfig"),
            "rollback_config": spec.get("RollbackConfig"),
            "endpoint_spec": spec.get("EndpointSpec"),
        }

    def create_service(self, spec: dict[str, Any]) -> str:
        try:
            created = self.api.create_service(spec["TaskTemplate"], **self._service_arguments(spec))
        except DockerException as exc:
            raise EngineError("cannot create service %s: %s" % (spec["Name"], _explain(exc))) from None
        return created["ID"]

    def update_service(self, service_id: str, version: int, spec: dict[str, Any]) -> None:
        """Replace the service's spec by ``spec`` (the engine rolls the tasks by the spec's UpdateConfig)."""
        try:
            self.api.update_service(
                service_id, version, task_template=spec["TaskTemplate"], **self._service_arguments(spec)
            )
        except DockerException as exc:
            raise EngineError("cannot update service %s: %s" % (spec["Name"], _explain(exc))) from None

    def remove_service(self, name: str) -> None:
        try:
            self.api.remove_service(name)
        except NotFound:
            return
        except DockerException as exc:
            raise EngineError("cannot remove service %s: %s" % (name, _explain(exc))) from None

    def tasks(self, service: str) -> list[dict[str, Any]]:
        try:
            return self.api.tasks(filters={"service": service})
        except DockerException as exc:
            raise EngineError("cannot list the tasks of service %s: %s" % (service, _explain(exc))) from None

    def secrets(self, label: str) -> list[dict[str, Any]]:
        """Swarm secrets carrying ``label`` (``key`` or ``key=value``)."""
        try:
            return self.api.secrets(filters={"label": label})
        except DockerException as exc:
            raise EngineError("cannot list swarm secrets: %s" % _explain(exc)) from None

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        try:
            return self.api.create_secret(name, data, labels=labels)["ID"]
        except DockerException as exc:
            raise EngineError("cannot create swarm secret %s: %s" % (name, _explain(exc))) from None

    def remove_secret(self, secret_id: str) -> None:
        try:
            self.api.remove_secret(secret_id)
        except NotFound:
            return
        except DockerException as exc:
            raise EngineError("cannot remove swarm secret %s: %s" % (secret_id, _explain(exc))) from None
