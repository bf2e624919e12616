"""Values that name themselves: each bad value is refused in one line naming the option and the allowed range or form,
before anything changes (registry_timeout, registry_tls's days, empty names, IPv6 registries the engine cannot name,
empty target lists, a mount target that is the data mount in another spelling)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils import tls
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, InvalidOption, check_timeout
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import InvalidSpec, RegistrySpec, desired_view
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient, EngineError
from ansible_collections.dockhand.registry.plugins.module_utils.gc import GcError, backend_for
from ansible_collections.dockhand.registry.plugins.module_utils.publish import ItemsFailed, TagItem, push_images, tag_images
from ansible_collections.dockhand.registry.plugins.module_utils.registry import client_factory
from ansible_collections.dockhand.registry.plugins.module_utils.swarm import ServiceSpec
from ansible_collections.dockhand.registry.plugins.module_utils.swarm_membership import SwarmError

REGISTRY_PARAMS = {"workers": 4, "username": None, "password": None, "registry_scheme": "auto", "registry_ca_cert": None,
                   "registry_validate_certs": True}


# -- registry_timeout (image_push, image_publish, image_sync, registry_info, registry_prune) ------------------------
@pytest.mark.parametrize("value", [-1.0, 0, 0.0, float("nan"), float("inf")])
def test_registry_timeout_out_of_range(value):
    with pytest.raises(InvalidOption, match=r"^registry_timeout %s must be a number of seconds more than 0$" % value):
        client_factory(dict(REGISTRY_PARAMS, registry_timeout=value))


def test_registry_timeout_in_range():
    assert check_timeout("registry_timeout", 0.5) == 0.5
    assert client_factory(dict(REGISTRY_PARAMS, registry_timeout=30.0))("localhost:5000").timeout == 30.0


# -- registry_tls ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "days, ca_days, renew_days, message",
    [
        (-1, 3650, 30, "days -1 is out of range: give 31 to 36500 (more than renew_days 30, at most 100 years)"),
        (825, 100000000, 30, "ca_days 100000000 is out of range: give 31 to 36500 (more than renew_days 30, at most 100 years)"),
        (0, 3650, 0, "days 0 is out of range: give 1 to 36500"),
        (20, 3650, 30, "days 20 must be greater than renew_days 30 (else the certificate is renewed on every run)"),
        (825, 3650, -1, "renew_days -1 is out of range: give 0 to 36499"),
    ],
)
def test_tls_validity_out_of_range_names_the_option(tmp_path, days, ca_days, renew_days, message):
    with pytest.raises(tls.TlsError) as caught:
        tls.generate(str(tmp_path / "tls"), ["localhost"], days=days, ca_days=ca_days, renew_days=renew_days)
    assert str(caught.value).startswith(message)
    assert not (tmp_path / "tls").exists()


def test_tls_longest_validity_is_made(tmp_path):
    result = tls.generate(str(tmp_path / "tls"), ["localhost"], days=tls.MAX_DAYS, ca_days=tls.MAX_DAYS)
    assert result["changed"] and result["warnings"] == []


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: os.unlink(d / "ca.key"), "its key %s/ca.key is missing or unreadable"),
        (lambda d: (d / "ca.key").write_bytes((d / "server.key").read_bytes()), "its key %s/ca.key does not match it"),
    ],
)
def test_tls_new_ca_warns_that_clients_must_trust_it(tmp_path, damage, reason):
    directory = tmp_path / "tls"
    first = tls.generate(str(directory), ["localhost"])
    assert first["warnings"] == []  # the first CA replaces nothing
    damage(directory)
    checked = tls.generate(str(directory), ["localhost"], check_mode=True)
    assert checked["warnings"][0].startswith("would make a new CA in %s because the old one cannot be kept (%s)" % (directory, reason % directory))
    again = tls.generate(str(directory), ["localhost"])
    warning = again["warnings"][0]
    assert warning.startswith("made a new CA in %s because the old one cannot be kept (%s): every client" % (directory, reason % directory))
    assert "the registry role installs it" in warning and "/etc/docker/certs.d/<registry host:port>/ca.crt" in warning
    assert again["actions"][0] == "renew CA %s/ca.crt" % directory
    assert tls.generate(str(directory), ["localhost"])["warnings"] == []


# -- names that are empty ------------------------------------------------------------------------
def test_gc_container_name_empty_refused_before_the_engine():
    with pytest.raises(GcError, match=r"^name '' is not a container name: give the registry container's name"):
        backend_for(lambda: pytest.fail("the engine must not be asked"), "", None, 60)


def test_registry_service_name_empty_refused():
    with pytest.raises(SwarmError, match="name '' is not a service name"):
        ServiceSpec(name="", image="registry:2", data_path="/srv/registry").validate()


def test_engine_never_inspects_an_empty_name():
    class NeverAsked:
        def inspect_container(self, name):
            raise AssertionError("asked the engine about %r" % name)

    engine = EngineClient(api=NeverAsked())
    with pytest.raises(EngineError, match="cannot inspect a container without a name"):
        engine.container("")


# -- references the engine cannot name -------------------------------------------------------------
class Api:
    def __init__(self, api_version):
        self.api_version = api_version


class Engine(EngineClient):
    def __init__(self, api_version="1.41"):
        super().__init__(api=Api(api_version))
        self.images = {"app:1": {"Id": "sha256:" + "a" * 64, "RepoDigests": [], "RepoTags": ["app:1"]}}
        self.tagged = []

    def image_index(self):
        return dict(self.images)

    def image(self, ref):
        return self.images.get(ref)

    def tag(self, image, repository, tag):
        self.tagged.append("%s:%s" % (repository, tag))


IPV6 = "[::1]:5310/repo:1.0"


def test_ipv6_registry_refused_up_front_by_engines_before_25():
    engine = Engine("1.41")  # Docker 20.10
    with pytest.raises(ItemsFailed) as caught:
        tag_images(engine, [TagItem("app:1", ["localhost:5310/repo:1.0", IPV6])])
    assert str(caught.value).startswith(
        "image [::1]:5310/repo:1.0: the Docker engine (before 25.0) cannot name an image after an IPv6 registry address ([::1]:5310)")
    assert "image_sync, registry_info and registry_prune take the IPv6 address" in str(caught.value)
    assert engine.tagged == []
    with pytest.raises(ItemsFailed, match=r"cannot name an image after an IPv6 registry address"):
        push_images(engine, [IPV6], lambda registry: pytest.fail("no registry is asked"))


def test_ipv6_registry_left_to_engines_that_name_it():
    engine = Engine("1.44")
    assert engine.names_ipv6_registries
    tag_images(engine, [TagItem("app:1", [IPV6])])
    assert engine.tagged == ["[::1]:5310/repo:1.0"]


def test_empty_targets_refused():
    engine = Engine()
    with pytest.raises(ItemsFailed, match=r"^image app:1 has no targets: give at least one name to tag it as, or leave the item out$"):
        tag_images(engine, [TagItem("app:1", [])])
    assert engine.tagged == []
    assert tag_images(engine, [])["changed"] is False  # no item at all: nothing to do, said as such


# -- mount targets -------------------------------------------------------------------------------------
def _spec(tmp_path, *mounts):
    return RegistrySpec(name="registry", image="registry:2", data_path=str(tmp_path / "data"), mounts=list(mounts))


@pytest.mark.parametrize("target", ["/var/lib/registry/", "//var/lib/registry", "/var/lib/registry/."])
def test_data_mount_in_another_spelling_refused(tmp_path, target):
    with pytest.raises(InvalidSpec, match=r"^mount target /var/lib/registry is the data mount: use data_path or volume$"):
        _spec(tmp_path, {"source": str(tmp_path), "target": target}).validate()


def test_same_mount_target_twice_refused(tmp_path):
    spec = _spec(tmp_path, {"source": str(tmp_path), "target": "/auth"}, {"source": str(tmp_path), "target": "/auth/"})
    with pytest.raises(InvalidSpec, match=r"^mount target /auth is given twice$"):
        spec.validate()


def test_mount_target_compared_as_the_engine_keeps_it(tmp_path):
    """The engine stores /certs/ as /certs: compared in that form, a trailing slash never recreates the container."""
    spec = _spec(tmp_path, {"source": str(tmp_path), "target": "/certs/", "read_only": True})
    spec.validate()
    view = desired_view(spec, {"Id": "sha256:i", "Config": {}})
    assert "bind:%s->/certs (ro)" % tmp_path in view["mounts"]


def test_messages_are_dockhand_errors():
    assert issubclass(InvalidOption, DockhandError) and issubclass(tls.TlsError, DockhandError)
