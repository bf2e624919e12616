# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of a registry's tags a retention policy lets go, and letting them go.

:func:`plan_prune` decides, without touching anything, which manifests a set of retention rules deletes;
:func:`run_prune` reads the registry (catalog.py's Reader), plans every repository a rule matches, and deletes.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.catalog import (
    InvalidPattern,
    Reader,
    TagInfo,
    compile_patterns,
    matches,
    natural_key,
    newest_first,
)
from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient


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


def run_prune(
    client: RegistryClient, rules: list[dict[str, Any]], check_mode: bool = False, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """Apply retention ``rules`` to every repository one matches; in check mode, say what would go."""
    compiled = compile_rules(rules)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    reader = Reader(client)
    repos = [r for r in reader.repositories([]) if rule_for(r, compiled)]
    infos = reader.details(reader.tags(repos, []))
    plans = {repo: plan_prune(infos[repo], rule_for(repo, compiled), now) for repo in repos}  # type: ignore[arg-type]
    work = [(repo, digest, tags) for repo, plan in plans.items() for digest, tags in sorted(plan["delete"].items())]
    if work:
        # Asks before anything goes: a DELETE of a digest no registry holds answers 404 with deletes on, 405 off.
        client.delete_manifest(work[0][0], PROBE_DIGEST)
    actions = ["delete %s@%s (tags %s)" % (repo, digest, ", ".join(sorted(tags, key=natural_key))) for repo, digest, tags in work]
    deleted_flags = [True] * len(work)
    if work and not check_mode:
        deleted_flags = client.map(lambda item: client.delete_manifest(item[0], item[1]), work)
    deleted = [
        {"repository": repo, "digest": digest, "tags": sorted(tags, key=natural_key)}
        for (repo, digest, tags), done in zip(work, deleted_flags)
        if done
    ]
    before = {repo: sorted((i.tag for i in infos[repo]), key=natural_key) for repo in repos}
    gone = {(d["repository"], t) for d in deleted for t in d["tags"]}
    after = {repo: [t for t in tags if (repo, t) not in gone] for repo, tags in before.items()}
    return {
        "changed": bool(deleted),
        "actions": actions,
        "deleted": deleted,
        "kept": {repo: plan["keep"] for repo, plan in plans.items()},
        "diff": {"before": {"tags": before}, "after": {"tags": after}},
    }
