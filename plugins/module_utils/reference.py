# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and normalise image references, once, for every module.

The grammar follows the distribution project's reference package:
``[registry[:port]/]path[:tag][@digest]``.  A first path component is a
registry host when it contains a dot or a colon, or is ``localhost``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = r"(?:%s(?:\.%s)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?" % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Full matches, ASCII only: ``$`` also matches before a final newline ("latest\n" would pass) and ``\w`` or
# ``[0-9]`` with re.UNICODE accept letters and digits of every script ("ä", "١٢"), which the engine refuses later.
DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
PATH_RE = re.compile(r"%s(?:/%s)*" % (_PATH_COMPONENT, _PATH_COMPONENT), re.ASCII)
TAG_RE = re.compile(_TAG, re.ASCII)
DIGEST_RE = re.compile(_DIGEST, re.ASCII)

NAME_MAX_LENGTH = 255
DEFAULT_TAG = "latest"


class InvalidReference(DockhandError, ValueError):
    """An image reference, repository, tag or registry address is malformed.

    A DockhandError, so that modules report it as their one-line error (not a traceback)."""


@dataclass(frozen=True)
class Reference:
    """A parsed image reference."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Repository name as the engine knows it (with the registry host)."""
        if self.registry:
            return "%s/%s" % (self.registry, self.repository)
        return self.repository

    @property
    def tag_or_default(self) -> str:
        return self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def _is_registry_component(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def validate_registry(registry: str) -> str:
    """Return a registry address ``host[:port]`` or raise naming it."""
    if not isinstance(registry, str) or not registry:
        raise InvalidReference("invalid registry address %r: it is empty" % (registry,))
    if "://" in registry:
        raise InvalidReference(
            "invalid registry address %r: give host[:port] without a scheme" % registry
        )
    if not DOMAIN_RE.fullmatch(registry):
        raise InvalidReference("invalid registry address %r: expected host[:port]" % registry)
    port = registry.rsplit("]", 1)[-1].partition(":")[2]
    if port and not 0 < int(port) < 65536:
        raise InvalidReference("invalid registry address %r: port %s is out of range" % (registry, port))
    return registry


def validate_repository(repository: str) -> str:
    if not isinstance(repository, str) or not PATH_RE.fullmatch(repository):
        raise InvalidReference(
            "invalid repository name %r: lowercase letters, digits and separators (. _ __ -) in /-separated parts"
            % (repository,)
        )
    return repository


def validate_tag(tag: str) -> str:
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise InvalidReference(
            "invalid tag %r: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'" % (tag,)
        )
    return tag


def parse(reference: str) -> Reference:
    """Parse ``reference``; raise :class:`InvalidReference` naming it when malformed."""
    if not isinstance(reference, str) or not reference.strip():
        raise InvalidReference("invalid image reference %r: it is empty" % (reference,))
    text = reference
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_RE.fullmatch(digest):
            raise InvalidReference("invalid image reference %r: bad digest %r" % (reference, digest))
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference("invalid image reference %r: bad tag %r" % (reference, tag))
    registry = None
    first, sep, rest = text.partition("/")
    if sep and _is_registry_component(first):
        registry, text = first, rest
        try:
            validate_registry(registry)
        except InvalidReference as exc:
            raise InvalidReference("invalid image reference %r: %s" % (reference, exc)) from None
    if not PATH_RE.fullmatch(text):
        raise InvalidReference(
            "invalid image reference %r: repository %r must be lowercase letters, digits and separators"
            % (reference, text)
        )
    if len((registry + "/" if registry else "") + text) > NAME_MAX_LENGTH:
        raise InvalidReference("invalid image reference %r: name longer than %d characters" % (reference, NAME_MAX_LENGTH))
    return Reference(registry, text, tag, digest)
