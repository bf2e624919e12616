# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of a registry's tags a retention policy lets go, and letting them go.

:func:`plan_prune` decides, without touching anything, which manifests a set of retention rules deletes;
:func:`run_prune` reads the registry (catalog.py's Reader), plans every repository a rule matches, and deletes.

Distribution 2.8 deletes manifests by digest only, and such a delete also removes every tag pointing at the digest
at that moment, including a tag another client moved there after the plan was made. Nothing the rules keep is lost
to that race: every delete waits for a read of the repository's kept tags (and of any tag that appeared since the
plan) that started after its turn came, and is skipped when one of them now points at its digest
(:class:`TagWatch`); after the deletes the kept tags are read again, and one that vanished is put back from the
manifest bytes read before the delete (:func:`_restore`: its blobs stay until a garbage collection).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.catalog import (
    InvalidPattern,
    Reader,
    TagInfo,
    compile_patterns,
    dangling_warning,
    matches,
    natural_key,
    newest_first,
)
from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError, one_line
from ansible_collections.dockhand.registry.plugins.module_utils.registry import (
    INDEX_MEDIA_TYPES,
    Manifest,
    RegistryClient,
    RegistryDeleteDisabled,
    steady,
)
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryAuthError, RegistryError


@dataclass
class Rule:
    repository: re.Pattern[str]
    keep_last: int | None
    keep_tags: list[re.Pattern[str]]
    older_than_days: int | None


def compile_rules(rules: list[dict[str, Any]]) -> list[Rule]:
    """Validate every rule before anything is read or deleted; raise naming the first bad value."""
    compiled = []
    for number, rule in enumerate(rules, 1):
        keep_last = rule.get("keep_last")
        older = rule.get("older_than_days")
        if keep_last is None and older is None:
            raise InvalidPattern(
                "retention rule %d (repository %r) sets neither keep_last nor older_than_days: it would delete every"
                " tag not matching keep_tags" % (number, rule.get("repository"))
            )
        if keep_last is not None and keep_last < 0:
            raise InvalidPattern("retention rule %d: keep_last %r must be 0 or more" % (number, keep_last))
        if older is not None and older < 0:
            raise InvalidPattern("retention rule %d: older_than_days %r must be 0 or more" % (number, older))
        compiled.append(
            Rule(
                repository=compile_patterns([rule.get("repository") or ".*"], "repository pattern")[0],
                keep_last=keep_last,
                keep_tags=compile_patterns(rule.get("keep_tags"), "keep_tags pattern"),
                older_than_days=older,
            )
        )
    return compiled


def rule_for(repository: str, rules: list[Rule]) -> Rule | None:
    """The first rule whose repository pattern matches (rules are tried in order)."""
    for rule in rules:
        if rule.repository.fullmatch(repository):
            return rule
    return None


def plan_prune(infos: list[TagInfo], rule: Rule, now: datetime.datetime) -> dict[str, Any]:
    """Which tags of one repository go: ``{"keep": {tag: why}, "delete": {digest: [tags]}}``.

    A tag goes when it is not among the ``keep_last`` newest (of the tags no pattern keeps), matches no ``keep_tags`` pattern and (when
    ``older_than_days`` is set) is older than that. A manifest is deleted only when every tag pointing at
    it goes: a digest that a kept tag (or a kept index) references stays, with all its tags.
    """
    ordered = newest_first(infos)
    keep: dict[str, str] = {}
    candidates: list[TagInfo] = []
    rank = 0  # among the tags keep_tags does not keep: "keep 3 + latest" keeps 4
    for info in ordered:
        if matches(info.tag, rule.keep_tags):
            keep[info.tag] = "matches keep_tags"
            continue
        rank += 1
        if rule.keep_last is not None and rank <= rule.keep_last:
            keep[info.tag] = "one of the %d newest" % rule.keep_last
        elif rule.older_than_days is not None and info.created_time() > now - datetime.timedelta(days=rule.older_than_days):
            keep[info.tag] = "younger than %d days" % rule.older_than_days
        else:
            candidates.append(info)
    protected: dict[str, str] = {}
    for info in ordered:
        if info.tag in keep:
            protected.setdefault(info.digest, info.tag)
            for child in info.children:
                protected.setdefault(child, info.tag)
    delete: dict[str, list[str]] = {}
    for info in candidates:
        if info.digest in protected:
            keep[info.tag] = "shares digest %s with kept tag %s" % (info.digest, protected[info.digest])
        else:
            delete.setdefault(info.digest, []).append(info.tag)
    return {"order": [i.tag for i in ordered], "keep": keep, "delete": delete}


PROBE_DIGEST = "sha256:" + "0" * 64
OCI_INDEX = INDEX_MEDIA_TYPES[1]


class PruneIncomplete(DockhandError):
    """Some deletes (or a restore) failed; ``results`` holds what was done."""

    def __init__(self, message: str, results: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.results = results


@dataclass
class Target:
    """One manifest the plan deletes: its repository, digest, the tags the plan saw on it, and its bytes as read
    before the delete (what a restore puts back)."""

    repository: str
    digest: str
    tags: list[str]
    manifest: Manifest | None = None


class TagWatch:
    """Where the tags of one repository that must stay point, read again while its manifests are deleted.

    Watched: the tags the rules keep (with the digest the plan read) and every tag that appears after the plan (it is
    in no plan: it stays). :meth:`fresh` answers with a read (``tags/list``, then a ``HEAD`` of every watched tag)
    that started after it was called. Callers in parallel share reads: one runs at a time and the next serves every
    caller that asked while it ran, so the requests grow with the time the deletes take, not with their number.
    Every read records where each watched tag was (:attr:`last_seen`) and which planned digest a watched tag now
    points at (:attr:`held`: that delete is skipped)."""

    def __init__(self, client: RegistryClient, repository: str, known: list[str], kept: dict[str, str], targets: set[str]) -> None:
        self.client = client
        self.repository = repository
        self.known = set(known)
        self.last_seen = dict(kept)
        self.new: set[str] = set()
        self.targets = targets
        self.held: dict[str, str] = {}
        self.reads = 0
        self._cond = threading.Condition()
        self._started = 0
        self._running = False
        self._done: dict[int, Any] = {}

    def fresh(self) -> dict[str, str | None]:
        """``{tag: digest or None}`` for every watched tag, from a read that started after this call."""
        with self._cond:
            want = self._started + 1
            while True:
                ready = [number for number in self._done if number >= want]
                if ready:
                    return self._answer(self._done[max(ready)])
                if not self._running:
                    self._running = True
                    self._started += 1
                    mine = self._started
                    break
                self._cond.wait()
        try:
            result: Any = self._read()
        except RegistryError as exc:  # every caller waiting on this read gets it
            result = exc
        with self._cond:
            self._done = {mine: result}
            self._running = False
            self._cond.notify_all()
        return self._answer(result)

    @staticmethod
    def _answer(result: Any) -> dict[str, str | None]:
        if isinstance(result, Exception):
            raise result
        return result

    def _read(self) -> dict[str, str | None]:
        listed = set(steady(self.client.tags, self.repository))
        appeared = listed - self.known
        self.known |= appeared
        self.new |= appeared
        now: dict[str, str | None] = {}
        for tag in sorted(set(self.last_seen) | self.new, key=natural_key):
            now[tag] = steady(self.client.manifest_digest, self.repository, tag) if tag in listed else None
        self.reads += 1
        for tag, digest in now.items():
            if digest:
                self.last_seen[tag] = digest
                if digest in self.targets:
                    self.held.setdefault(digest, tag)
        return now


def _placeholder(repository: str) -> Manifest:
    """An empty image index of its own (a nonce in its annotations): no other tag points at it, so deleting it
    removes exactly the tags moved onto it."""
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
        "annotations": {
            "io.dockhand.registry.placeholder": "removes dangling tags of %s; deleted right after" % repository,
            "io.dockhand.registry.nonce": uuid.uuid4().hex,
        },
    }
    data = json.dumps(body, sort_keys=True).encode()
    return Manifest(data, OCI_INDEX, "sha256:" + hashlib.sha256(data).hexdigest())


def remove_dangling(client: RegistryClient, dangling: dict[str, list[str]]) -> list[str]:
    """Remove tags whose manifest is gone. Distribution 2.8 deletes by digest only, and a DELETE of the gone digest
    answers 404 and leaves the tag, so each tag is first moved onto a placeholder manifest of this run
    (:func:`_placeholder`), which is then deleted: that removes exactly the tags on it. A tag that resolves again
    (pushed meanwhile) is left alone. The tags removed, as ``repository:tag``."""
    removed: list[str] = []
    for repository, tags in sorted(dangling.items()):
        placeholder = _placeholder(repository)
        moved = [tag for tag in tags if steady(client.manifest_digest, repository, tag) is None]
        for tag in moved:
            steady(client.put_manifest, repository, tag, placeholder)
        if moved:
            steady(client.delete_manifest, repository, placeholder.digest)
            removed.extend("%s:%s" % (repository, tag) for tag in moved)
    return removed


def _count(number: int, noun: str) -> str:
    return "%d %s%s" % (number, noun, "" if number == 1 else "s")


def _children(manifest: Manifest) -> list[str]:
    if manifest.media_type not in INDEX_MEDIA_TYPES:
        return []
    try:
        return [entry.get("digest", "") for entry in json.loads(manifest.data).get("manifests") or []]
    except (ValueError, AttributeError):
        return []


def _restore(client: RegistryClient, repository: str, tag: str, digest: str, known: dict[str, Manifest]) -> None:
    """Put ``tag`` back at ``digest``: the manifest bytes read before the delete (or read now when the manifest is
    still there); an index's platform manifests first, when they were deleted too."""
    manifest = known.get(digest)
    if manifest is None:
        found = client.read_manifest(repository, digest)
        if found is None:
            raise RegistryError("manifest %s of %s is gone and was not read before" % (digest, repository))
        manifest = found[0]
    for child in _children(manifest):
        if child in known and steady(client.manifest_digest, repository, child) is None:
            steady(client.put_manifest, repository, child, known[child])
    steady(client.put_manifest, repository, tag, manifest)


class _Deletes:
    """The delete phase of one run: every target deleted after a fresh read of its repository's kept tags, then
    the kept tags verified and restored."""

    def __init__(self, client: RegistryClient, infos: dict[str, list[TagInfo]], plans: dict[str, dict[str, Any]], targets: list[Target]) -> None:
        self.client = client
        self.targets = targets
        self.known: dict[str, dict[str, Manifest]] = {}
        for repo, tags in infos.items():
            for info in tags:
                if info.manifest is not None:
                    self.known.setdefault(repo, {})[info.digest] = info.manifest
        digests = {repo: {i.tag: i.digest for i in tags} for repo, tags in infos.items()}
        self.watches = {
            repo: TagWatch(
                client, repo, [i.tag for i in infos[repo]], {tag: digests[repo][tag] for tag in plans[repo]["keep"]},
                {t.digest for t in targets if t.repository == repo},
            )
            for repo in sorted({t.repository for t in targets})
        }
        self.deleted: list[Target] = []
        self.skipped: list[dict[str, Any]] = []
        self.restored: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.warnings: list[str] = []

    def _one(self, target: Target) -> tuple[str, str]:
        """Delete one target after a fresh read of its repository (twice at most): ``(outcome, detail)``."""
        watch = self.watches[target.repository]
        error = ""
        for _attempt in range(2):
            try:
                watch.fresh()
                tag = watch.held.get(target.digest)
                if tag is not None:
                    return "held", tag
                return ("deleted" if self.client.delete_manifest(target.repository, target.digest) else "gone"), ""
            except (RegistryDeleteDisabled, RegistryAuthError):
                raise
            except RegistryError as exc:
                error = one_line(exc)
            try:
                if self.client.manifest_digest(target.repository, target.digest) is None:
                    # Distribution removes the manifest first, then its tags; 2.8 fails in between (HTTP 500,
                    # "invalid checksum digest format") when it reads a tag link another client is writing.
                    return "untagged", error
            except RegistryError:
                pass
        return "failed", error

    def run(self) -> None:
        outcomes = self.client.map(self._one, self.targets)
        half_done: dict[str, list[str]] = {}
        errors: list[str] = []
        for target, (outcome, detail) in zip(self.targets, outcomes):
            if outcome in ("deleted", "untagged"):
                self.deleted.append(target)
            if outcome == "untagged":
                half_done.setdefault(target.repository, []).extend(target.tags)
                errors.append(detail)
            elif outcome == "held":
                self.skipped.append(
                    {"repository": target.repository, "digest": target.digest, "tags": target.tags,
                     "reason": "tag %s points at it now" % detail}
                )  # fmt: skip
            elif outcome == "failed":
                self.failures.append("%s@%s: %s" % (target.repository, target.digest, detail))
        try:
            self._verify()
        except RegistryError as exc:
            self.failures.append("verifying the kept tags: %s" % one_line(exc))
        if half_done:
            self._finish(half_done, errors)

    def _finish(self, half_done: dict[str, list[str]], errors: list[str]) -> None:
        """The tags of manifests whose delete failed half-way (manifest gone, tags left): removed as dangling."""
        reader = Reader(self.client)
        reader.missing = half_done
        try:
            dangling = reader.dangling()
            removed = remove_dangling(self.client, dangling) if dangling else []
        except RegistryError as exc:
            self.failures.append("removing the tags of half-done deletes: %s" % one_line(exc))
            return
        self.warnings.append(
            "%s failed after the registry had removed the manifest (distribution 2.8 does that when another client"
            " writes a tag of the repository at that moment; first error: %s); the tags left dangling were removed: %s"
            % (_count(len(errors), "delete"), errors[0][:200], ", ".join(removed) or "none")
        )

    def _verify(self) -> None:
        """Every watched tag read again after the deletes; one that vanished is put back (and read once more)."""
        deleted = {(t.repository, t.digest) for t in self.deleted}
        for repo, watch in self.watches.items():
            known = dict(self.known.get(repo, {}), **{t.digest: t.manifest for t in self.targets if t.repository == repo and t.manifest})
            put_back: dict[str, str] = {}
            for tag, digest in watch.fresh().items():
                last = watch.last_seen.get(tag)
                if digest is not None or last is None:
                    continue
                if (repo, last) in deleted:
                    reason = "moved by another client onto %s, which this prune deleted: put back there" % last
                elif steady(self.client.manifest_digest, repo, last) is not None:
                    reason = ("gone while this prune deleted: another client moved it onto a manifest being deleted;"
                              " put back at %s, where it was last read" % last)
                else:
                    self.warnings.append(
                        "tag %s:%s vanished with its manifest %s, which another client deleted: left as it is" % (repo, tag, last)
                    )
                    continue
                _restore(self.client, repo, tag, last, known)
                put_back[tag] = last
                self.restored.append({"repository": repo, "tag": tag, "digest": last, "reason": reason})
            if put_back:
                now = watch.fresh()
                for tag, digest in put_back.items():
                    if now.get(tag) != digest:
                        self.failures.append("tag %s:%s could not be put back at %s (it reads %s)" % (repo, tag, digest, now.get(tag)))
        if self.restored:
            self.warnings.append(
                "%s that must stay vanished while this prune deleted (another client moved it onto a manifest being"
                " deleted) and %s put back: %s" % (
                    _count(len(self.restored), "tag"), "was" if len(self.restored) == 1 else "were",
                    ", ".join("%s:%s@%s" % (r["repository"], r["tag"], r["digest"]) for r in self.restored))
            )


def run_prune(
    client: RegistryClient, rules: list[dict[str, Any]], check_mode: bool = False, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """Apply retention ``rules`` to every repository one matches; in check mode, say what would go. Dangling tags
    (listed, manifest gone) of those repositories are removed too."""
    compiled = compile_rules(rules)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    reader = Reader(client)
    repos = [r for r in reader.repositories([]) if rule_for(r, compiled)]
    infos = reader.details(reader.tags(repos, []))
    dangling = reader.dangling()
    plans = {repo: plan_prune(infos[repo], rule_for(repo, compiled), now) for repo in repos}  # type: ignore[arg-type]
    manifests = {(repo, i.digest): i.manifest for repo in repos for i in infos[repo]}
    targets = [
        Target(repo, digest, sorted(tags, key=natural_key), manifests.get((repo, digest)))
        for repo, plan in plans.items()
        for digest, tags in sorted(plan["delete"].items())
    ]
    dangling_names = ["%s:%s" % (repo, tag) for repo, tags in sorted(dangling.items()) for tag in tags]
    if targets or dangling:
        # Asks before anything goes: a DELETE of a digest no registry holds answers 404 with deletes on, 405 off.
        client.delete_manifest((targets[0].repository if targets else sorted(dangling)[0]), PROBE_DIGEST)
    actions = ["delete %s@%s (tags %s)" % (t.repository, t.digest, ", ".join(t.tags)) for t in targets]
    actions += ["remove dangling tag %s (its manifest is gone)" % name for name in dangling_names]
    warnings: list[str] = []
    result: dict[str, Any] = {"skipped": [], "restored": []}
    if check_mode:
        done, removed = targets, dangling_names
    else:
        phase = _Deletes(client, infos, plans, targets)
        if targets:
            phase.run()
        done = phase.deleted
        removed = []
        if dangling:
            try:
                removed = remove_dangling(client, dangling)
            except RegistryError as exc:
                phase.failures.append("removing dangling tags: %s" % one_line(exc))
        result.update(skipped=phase.skipped, restored=phase.restored)
        warnings += phase.warnings
    if dangling:
        warnings.append(dangling_warning(dangling, "would be removed" if check_mode else "removed"))
    deleted = [{"repository": t.repository, "digest": t.digest, "tags": t.tags} for t in done]
    before = {repo: sorted([i.tag for i in infos[repo]] + dangling.get(repo, []), key=natural_key) for repo in repos}
    gone = {(d["repository"], t) for d in deleted for t in d["tags"]} | {tuple(n.split(":", 1)) for n in removed}
    after = {repo: [t for t in tags if (repo, t) not in gone] for repo, tags in before.items()}
    result.update(
        changed=bool(deleted or removed or result["restored"]),
        actions=actions,
        deleted=deleted,
        dangling_removed=removed,
        kept={repo: plan["keep"] for repo, plan in plans.items()},
        diff={"before": {"tags": before}, "after": {"tags": after}},
    )
    if warnings:
        result["warnings"] = warnings
    if not check_mode and phase.failures:
        raise PruneIncomplete(
            "registry %s: %d of %d deletes done, then: %s" % (client.registry, len(done), len(targets), "; ".join(phase.failures)),
            [result],
        )
    return result
