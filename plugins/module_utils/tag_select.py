# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which tags of a repository a copy takes: a regular expression (``tag_pattern``), a version range
(``tag_semver``) and the newest N by version order (``tag_limit``), for image_sync and the scheduled replication.

Versions are parsed and compared by the ``packaging`` library (PEP 440, what pip uses): ``1.2``, ``v1.2.3``,
``1.2.3-rc1`` (a pre-release) are versions; ``latest``, ``1.2.3-alpine`` are not, and are skipped (counted).
A range such as ``>=1.2,<2`` leaves pre-releases out unless it names one itself (``>=2.0rc1``), as pip does.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.reference import InvalidReference

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    PACKAGING_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported through missing_required_lib by the module
    PACKAGING_IMPORT_ERROR = traceback.format_exc()

HAS_PACKAGING = PACKAGING_IMPORT_ERROR is None
PACKAGING_LIBRARY = ("packaging", HAS_PACKAGING, PACKAGING_IMPORT_ERROR)


class InvalidSelection(InvalidReference):
    """A tag_pattern, tag_semver or tag_limit value the selection cannot use (a bad tag, as image_sync reports it)."""


@dataclass
class TagSelector:
    """The tags options of one source repository, checked once."""

    pattern: re.Pattern[str] | None = None
    semver: Any = None  # a packaging SpecifierSet
    limit: int | None = None
    semver_text: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, tag_pattern: str | None = None, tag_semver: str | None = None, tag_limit: int | None = None) -> TagSelector:
        """Check the options (one-line errors naming the bad value); raise before anything is read."""
        pattern = None
        if tag_pattern is not None:
            try:
                pattern = re.compile(tag_pattern)
            except re.error as exc:
                raise InvalidSelection("invalid tag_pattern %r: %s" % (tag_pattern, exc)) from None
        semver = None
        if tag_semver is not None:
            if not HAS_PACKAGING:
                raise InvalidSelection("tag_semver needs the Python library packaging on the host (Debian: python3-packaging)")
            try:
                semver = SpecifierSet(str(tag_semver))
            except InvalidSpecifier:
                raise InvalidSelection(
                    "invalid tag_semver %r: give version specifiers separated by commas, such as '>=1.2,<2' or '~=1.4'"
                    " (PEP 440, as pip takes them)" % (tag_semver,)
                ) from None
        if tag_limit is not None:
            if isinstance(tag_limit, bool) or not isinstance(tag_limit, int) or tag_limit < 1:
                raise InvalidSelection("tag_limit must be 1 or more, got %r" % (tag_limit,))
            if not HAS_PACKAGING:
                raise InvalidSelection("tag_limit needs the Python library packaging on the host (Debian: python3-packaging)")
        return cls(pattern, semver, tag_limit, None if tag_semver is None else str(tag_semver))

    @property
    def by_version(self) -> bool:
        return self.semver is not None or self.limit is not None

    def select(self, tags: list[str]) -> list[str]:
        """The tags chosen, sorted (in version order, oldest first, when a version range or a limit applies);
        ``counts`` says how many were listed, left out by each rule, and chosen."""
        counts = {"listed": len(tags)}
        chosen = [t for t in tags if self.pattern is None or self.pattern.fullmatch(t)]
        counts["not_matching_pattern"] = len(tags) - len(chosen)
        if not self.by_version:
            counts["chosen"] = len(chosen)
            self.counts = counts
            return sorted(chosen)
        versions = []
        for tag in chosen:
            try:
                versions.append((Version(tag), tag))
            except InvalidVersion:
                continue
        counts["not_versions"] = len(chosen) - len(versions)
        if self.semver is not None:
            pre = _names_a_pre_release(self.semver)
            in_range = [(v, t) for v, t in versions if self.semver.contains(v, prereleases=pre)]
            counts["outside_range"] = len(versions) - len(in_range)
            versions = in_range
        versions.sort()
        if self.limit is not None:
            counts["over_limit"] = max(len(versions) - self.limit, 0)
            versions = versions[-self.limit:]
        counts["chosen"] = len(versions)
        self.counts = counts
        return [tag for _version, tag in versions]


def _names_a_pre_release(specifiers: Any) -> bool:
    """Whether a range names a pre-release itself (``>=2.0rc1``): only then are pre-releases in it."""
    for specifier in specifiers:
        try:
            if Version(specifier.version.replace(".*", "")).is_prerelease:
                return True
        except InvalidVersion:
            continue
    return False
