# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tag and push lists of images: the logic behind ``image_tag`` and ``image_push``.

Both work in phases: validate every item first (references parse, local images
exist, registries answer) and act only when all of them are good, so that a bad item
in a list changes nothing; then act, item by item, reporting each one in input
order, so that one failure at that stage does not hide the other items' results.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import (
    DEFAULT_WORKERS,
    DockhandError,
    PartialFailure,
    failed_items,
)
from ansible_collections.dockhand.registry.plugins.module_utils.diagnose import PushDiagnosis
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient, stored_credentials
from ansible_collections.dockhand.registry.plugins.module_utils.reference import Reference, parse
from ansible_collections.dockhand.registry.plugins.module_utils.registry import Credentials, RegistryClient, client_factory
from ansible_collections.dockhand.registry.plugins.module_utils.transport import RegistryUnreachable

# Threads asking the registries for manifest digests (HEAD), at least.
HEAD_WORKERS = 8


def push_options(params: dict[str, Any]) -> dict[str, Any]:
    """``registry_factory``, ``auth_config`` and ``workers`` for push_images/publish_images, from a pushing
    module's parameters (PUSH_ARGSPEC and REGISTRY_ARGSPEC)."""
    credentials = Credentials(params["username"], params["password"], stored_credentials)
    return {
        "registry_factory": client_factory(params, pool_size=max(params["workers"], HEAD_WORKERS), credentials=credentials),
        "auth_config": credentials.auth_config,
        "workers": params["workers"],
    }


class ItemsFailed(PartialFailure):
    """Some items of a list failed; ``results`` still holds every item's outcome, ``result`` the module's result
    fields as they stand (``changed`` true when any item changed something)."""

    def __init__(self, message: str, results: list[dict[str, Any]] | None = None, **result: Any) -> None:
        results = results or []
        result.setdefault("changed", any(r.get("changed") for r in results))
        super().__init__(message, dict(result, results=results))


def _fail_items(what: str, errors: list[str], results: list[dict[str, Any]] | None = None) -> ItemsFailed:
    if len(errors) == 1:
        return ItemsFailed(errors[0], results)
    return ItemsFailed("%d %s failed: %s" % (len(errors), what, "; ".join(errors)), results)


class LocalImages:
    """Look up local images by reference: one ``docker images`` call, inspect as fallback."""

    def __init__(self, engine: EngineClient) -> None:
        self.engine = engine
        self._index: dict[str, dict[str, Any]] | None = None

    def get(self, ref: Reference | str) -> dict[str, Any] | None:
        """``Id`` and ``RepoDigests`` of the image behind ``ref``, or None."""
        text = str(ref)
        if isinstance(ref, Reference) and not ref.tag and not ref.digest:
            text += ":latest"
        if self._index is None:
            self._index = self.engine.image_index()
        found = self._index.get(text)
        if found is None:
            # Inspect the reference as given: the engine resolves a bare name to name:latest
            # and also accepts an image ID or a short ID prefix (which parses as a bare name).
            found = self.engine.image(str(ref))
        return found


def repo_digest(image: dict[str, Any], name: str) -> str | None:
    """The manifest digest the engine recorded for ``image`` in repository ``name``."""
    for entry in image.get("RepoDigests") or []:
        repo, _sep, digest = entry.partition("@")
        if repo == name:
            return digest
    return None


def check_engine_names(engine: EngineClient, ref: Reference, given: str) -> str | None:
    """Why the engine cannot name ``ref`` (given as ``given``), or None: engines before 25.0 refuse an IPv6 registry
    address in an image reference ("invalid reference format")."""
    if ref.registry and ref.registry.startswith("[") and not engine.names_ipv6_registries:
        return (
            "image %s: the Docker engine (before 25.0) cannot name an image after an IPv6 registry address (%s);"
            " give the registry a host name that resolves to it (such as localhost for ::1, or an /etc/hosts entry)."
            " image_sync, registry_info and registry_prune take the IPv6 address" % (given, ref.registry)
        )
    return None


def tag_action(source: str, target: str) -> str:
    return "tag %s as %s" % (source, target)


def push_action(result: dict[str, Any]) -> str:
    held = result["digest_before"]
    return "push %s (registry %s)" % (result["name"], "had %s" % held if held else "lacked the tag")


# -- image_tag -----------------------------------------------------------------------
@dataclass
class TagItem:
    source: str
    targets: list[str]


def _target_name(target: Reference) -> str:
    return "%s:%s" % (target.name, target.tag_or_default)


def tag_images(engine: EngineClient, items: list[TagItem], check_mode: bool = False) -> dict[str, Any]:
    """Make every target name the source's image ID; report what was (or would be) tagged.

    Phases: parse every item, find every source image, check that no target is given for two images; only then
    tag, item by item (a failed tag does not hide the other items' results)."""
    parsed = _parse_tag_items(engine, items)
    images = LocalImages(engine)
    sources = _find_sources(images, parsed)
    _check_targets_unique(parsed, sources)
    results, before, after, errors = _apply_tags(engine, images, parsed, sources, check_mode)
    if errors:
        raise _fail_items("tags", errors, results)
    return {
        "changed": any(entry["changed"] for entry in results),
        "images": results,
        "tagged": [t["name"] for entry in results for t in entry["targets"] if t["changed"]],
        "actions": [tag_action(entry["source"], t["name"]) for entry in results for t in entry["targets"] if t["changed"]],
        "diff": {"before": before, "after": after},
    }


def _parse_tag_items(engine: EngineClient, items: list[TagItem]) -> list[tuple[Reference, list[Reference]]]:
    errors: list[str] = []
    parsed: list[tuple[Reference, list[Reference]]] = []
    for item in items:
        if not item.targets:
            # An empty list (often a template that rendered to nothing) would publish nothing and say ok.
            errors.append("image %s has no targets: give at least one name to tag it as, or leave the item out" % item.source)
            continue
        try:
            targets = [parse(target) for target in item.targets]
            parsed.append((parse(item.source), targets))
        except DockhandError as exc:
            errors.append(str(exc))
            continue
        errors.extend("target %s: a tag cannot name a digest, give <repository>[:<tag>]" % t for t in targets if t.digest)
        named = [(parsed[-1][0], item.source), *zip(targets, item.targets)]
        errors.extend(e for e in (check_engine_names(engine, ref, given) for ref, given in named) if e)
    if errors:
        raise _fail_items("images", errors)
    return parsed


def _find_sources(images: LocalImages, parsed: list[tuple[Reference, list[Reference]]]) -> list[dict[str, Any]]:
    """The local image of every source, in order; fails naming each one the engine lacks."""
    found = [(source, images.get(source)) for source, _targets in parsed]
    errors = ["source image %s not found in the engine" % source for source, image in found if image is None]
    if errors:
        raise _fail_items("images", errors)
    return [image for _source, image in found if image is not None]


def _check_targets_unique(parsed: list[tuple[Reference, list[Reference]]], sources: list[dict[str, Any]]) -> None:
    wanted: dict[str, str] = {}
    errors: list[str] = []
    for (_source, targets), image in zip(parsed, sources):
        for target in targets:
            name = _target_name(target)
            if wanted.setdefault(name, image["Id"]) != image["Id"]:
                errors.append("target %s is given for two different images" % name)
    if errors:
        raise _fail_items("images", sorted(set(errors), key=errors.index))


def _apply_tags(
    engine: EngineClient,
    images: LocalImages,
    parsed: list[tuple[Reference, list[Reference]]],
    sources: list[dict[str, Any]],
    check_mode: bool,
) -> tuple[list[dict[str, Any]], dict[str, str | None], dict[str, str], list[str]]:
    """Tag each target that is missing or names another image: (results, diff before, diff after, errors)."""
    results: list[dict[str, Any]] = []
    before: dict[str, str | None] = {}
    after: dict[str, str] = {}
    errors: list[str] = []
    for (source, targets), image in zip(parsed, sources):
        entry: dict[str, Any] = {"source": str(source), "image_id": image["Id"], "targets": [], "changed": False}
        for target in targets:
            name = _target_name(target)
            if name in after:  # the same target given again for the same image: already settled
                current_id: str | None = after[name]
            else:
                current = images.get(target)
                current_id = current["Id"] if current else None
            changed = current_id != image["Id"]
            target_result: dict[str, Any] = {"name": name, "before": current_id, "changed": changed}
            if changed and not check_mode:
                try:
                    engine.tag(image["Id"], target.name, target.tag_or_default)
                except DockhandError as exc:
                    # Go on with the other targets: one failure must not hide their results.
                    target_result.update(changed=False, failed=True, msg=str(exc))
                    entry["failed"] = True
                    errors.append(str(exc))
            before.setdefault(name, current_id)
            after[name] = image["Id"] if not target_result.get("failed") else current_id
            entry["targets"].append(target_result)
            entry["changed"] = entry["changed"] or target_result["changed"]
        results.append(entry)
    return results, before, after, errors


# -- image_push ----------------------------------------------------------------------
@dataclass
class PushPlan:
    ref: Reference
    image_id: str
    local_digest: str | None
    before: str | None = None

    @property
    def name(self) -> str:
        return _target_name(self.ref)

    @property
    def up_to_date(self) -> bool:
        """The registry holds the tag with the digest the engine recorded for this image."""
        return self.before is not None and self.before == self.local_digest


def push_images(
    engine: EngineClient,
    names: list[str],
    registry_factory: Callable[[str], RegistryClient],
    auth_config: Callable[[str], dict[str, str] | None] = lambda registry: None,
    workers: int = DEFAULT_WORKERS,
    check_mode: bool = False,
    sources: dict[str, str] | None = None,
    planned: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Push each image whose tag the registry lacks or holds with another digest.

    Phases: parse the names, find the local images, plan (one push per ``<name>:<tag>``), ask the registries
    (all of them, before anything is pushed), push.

    ``planned`` maps ``<name>:<tag>`` to the local image that name has (or, in check mode, would have) after a
    tagging step in the same module run, in place of asking the engine.
    ``sources`` maps an image name (as given in ``names``) to the local image it is a tag of. It matters in check
    mode only, where an earlier image_tag task tagged nothing: a name that is not tagged yet is then looked up as
    its source. Also in check mode, a registry that does not answer is taken as empty (an earlier task would
    create it), with a warning; outside check mode it fails the task, as ever.
    """
    parsed = _parse_push_names(engine, names)
    found = _find_local_images(LocalImages(engine), parsed, check_mode, sources or {}, planned or {})
    plans = [PushPlan(ref, image["Id"], repo_digest(image, ref.name)) for ref, image in found]
    workers = max(1, workers)
    # One client (one connection pool, one credential lookup) per registry, not per image.
    registries: dict[str, RegistryClient] = {}
    for plan in plans:
        registry = plan.ref.registry or ""
        if registry not in registries:
            registries[registry] = registry_factory(registry)
    warnings = _ask_registries(plans, registries, workers, check_mode)
    diagnosis = PushDiagnosis(engine, registries.__getitem__)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda plan: _push_one(engine, plan, auth_config, check_mode, diagnosis), plans))
    outcome = {
        "changed": any(r["changed"] for r in results),
        "images": results,
        "pushed": [r["name"] for r in results if r["pushed"] and not r.get("failed")],
        "actions": [push_action(r) for r in results if r["pushed"] and not r.get("failed")],
        "diff": {
            "before": {r["name"]: r["digest_before"] for r in results},
            "after": {r["name"]: r["digest"] or "(new digest after push)" for r in results},
        },
    }
    if warnings:
        outcome["warnings"] = warnings
    failed = [(r["name"], r.pop("_cause"), r["msg"]) for r in results if r.get("failed")]
    if failed:
        # Each failed image once, grouped by cause; what did change (the other pushes) is reported with the failure.
        fields = {k: outcome[k] for k in ("changed", "pushed", "actions", "warnings") if k in outcome}
        raise ItemsFailed(failed_items("pushes", failed), results, **fields)
    return outcome


def _parse_push_names(engine: EngineClient, names: list[str]) -> list[tuple[str, Reference]]:
    """Each name with its reference; fails naming every name that does not parse, names no registry or a digest, or
    that the engine cannot name."""
    errors: list[str] = []
    parsed: list[tuple[str, Reference]] = []
    for name in names:
        try:
            ref = parse(name)
        except DockhandError as exc:
            errors.append(str(exc))
            continue
        unnamable = check_engine_names(engine, ref, name)
        if not ref.registry:
            errors.append("image %s names no registry: use <registry host[:port]>/%s" % (name, name))
        elif ref.digest:
            errors.append("image %s: push a tag, not a digest" % name)
        elif unnamable:
            errors.append(unnamable)
        else:
            parsed.append((name, ref))
    if errors:
        raise _fail_items("images", errors)
    return parsed


def _find_local_images(
    images: LocalImages,
    parsed: list[tuple[str, Reference]],
    check_mode: bool,
    sources: dict[str, str],
    planned: dict[str, dict[str, Any]],
) -> list[tuple[Reference, dict[str, Any]]]:
    """The local image behind each ``<name>:<tag>`` (once each, first one wins); fails naming each missing one."""
    errors: list[str] = []
    found: dict[str, tuple[Reference, dict[str, Any]]] = {}
    for name, ref in parsed:
        key = _target_name(ref)
        if key in found:
            continue
        image = planned.get(key) or images.get(ref)
        if image is None and check_mode and sources.get(name):
            image = images.get(parse(sources[name]))
        if image is None:
            errors.append("local image %s not found in the engine" % key)
            continue
        found[key] = (ref, image)
    if errors:
        raise _fail_items("images", errors)
    return list(found.values())


def _ask_registries(
    plans: list[PushPlan], registries: dict[str, RegistryClient], workers: int, check_mode: bool
) -> list[str]:
    """Set each plan's ``before`` (the registry's digest of the tag, None when absent); return the warnings.

    All registries are asked before anything is pushed: an unreachable registry or a refused login stops the task
    first. A manifest HEAD is cheap for the registry, so these run on at least HEAD_WORKERS threads."""
    for client in registries.values():
        try:
            # Settle the scheme (https or http) once here, not in every HEAD thread at once.
            client.base_url  # noqa: B018
        except DockhandError:
            pass  # each image's HEAD below reports it
    warnings: list[str] = []
    errors: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(workers, HEAD_WORKERS)) as pool:
        futures = [pool.submit(_head, registries[plan.ref.registry or ""], plan) for plan in plans]
        for plan, future in zip(plans, futures):
            try:
                plan.before = future.result()
            except RegistryUnreachable as exc:
                if not check_mode:
                    errors.append((str(plan.ref), str(exc)))
                    continue
                warning = "check mode: registry %s does not answer, taken as empty" % plan.ref.registry
                if warning not in warnings:
                    warnings.append(warning)
            except DockhandError as exc:
                errors.append((str(plan.ref), str(exc)))
    if errors:
        raise ItemsFailed(failed_items("images", errors))
    for client in registries.values():
        warnings.extend(w for w in getattr(client, "warnings", []) if w not in warnings)
    return warnings


def _head(client: RegistryClient, plan: PushPlan) -> str | None:
    """The registry's digest of the plan's tag (None when absent)."""
    before = client.manifest_digest(plan.ref.repository, plan.ref.tag_or_default)
    if before and plan.local_digest is None and client.holds_image(plan.ref.repository, before, plan.image_id):
        # The engine has no RepoDigest for this repository (e.g. after docker load), yet the registry holds
        # this very image under the tag: nothing to push, in check mode and in a real run alike.
        plan.local_digest = before
    return before


def _push_one(
    engine: EngineClient,
    plan: PushPlan,
    auth_config: Callable[[str], dict[str, str] | None],
    check_mode: bool,
    diagnosis: PushDiagnosis,
) -> dict[str, Any]:
    """Push one plan unless the registry is up to date; its result (a failed push is a result, not an error: it
    says ``pushed`` false, ``failed`` true and why, in ``msg``)."""
    ref = plan.ref
    result: dict[str, Any] = {
        "name": plan.name,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag_or_default,
        "image_id": plan.image_id,
        "digest_before": plan.before,
        "digest": plan.before,
        "pushed": False,
        "changed": False,
    }
    if plan.up_to_date:
        return result
    result["pushed"] = True
    if check_mode:
        return dict(result, changed=True, digest=None)
    try:
        result["digest"] = engine.push(ref.name, ref.tag_or_default, auth_config(ref.registry or ""))
    except DockhandError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        cause = diagnosis.explain(ref.registry or "", ref.repository, reason)
        # The tag in the registry is not known to have moved: digest null, pushed false.
        message = str(exc) if cause == reason else "push of %s failed: %s" % (plan.name, cause)
        return dict(result, pushed=False, failed=True, msg=message, digest=None, _cause=cause)
    result["changed"] = result["digest"] != plan.before
    return result


# -- image_publish -------------------------------------------------------------------
def publish_images(
    engine: EngineClient, items: list[TagItem], registry_factory: Callable[[str], RegistryClient], check_mode: bool = False, **push: Any
) -> dict[str, Any]:
    """Tag each source as its targets, then push every target: both steps in one module run.

    ``push`` is what :func:`push_images` takes besides (``auth_config``, ``workers``).
    A failed tag stops the task before anything is pushed (its ``results`` hold every
    item's tag outcome); a failed push is reported per image as in :func:`push_images`.
    """
    tagged = tag_images(engine, items, check_mode=check_mode)
    planned: dict[str, dict[str, Any]] = {}
    images = LocalImages(engine)
    for item, entry in zip(items, tagged["images"]):
        source = images.get(parse(item.source))
        for target in entry["targets"]:
            if source is not None:
                planned[target["name"]] = source
    names = [target["name"] for entry in tagged["images"] for target in entry["targets"]]
    try:
        pushed = push_images(engine, names, registry_factory, check_mode=check_mode, planned=planned, **push)
    except ItemsFailed as exc:
        # The tags made stay made: they and the pushes that went through are what changed.
        fields = dict(exc.result, changed=tagged["changed"] or exc.result.get("changed", False), tagged=tagged["tagged"])
        fields["actions"] = tagged["actions"] + exc.result.get("actions", [])
        fields["results"] = [dict(r, tagged=r["name"] in tagged["tagged"]) for r in exc.results]
        raise ItemsFailed(str(exc), **fields) from None
    outcome = {
        "changed": tagged["changed"] or pushed["changed"],
        "images": [dict(r, tagged=r["name"] in tagged["tagged"]) for r in pushed["images"]],
        "tagged": tagged["tagged"],
        "pushed": pushed["pushed"],
        "actions": tagged["actions"] + pushed["actions"],
        "diff": {
            "before": {"tags": tagged["diff"]["before"], "registry": pushed["diff"]["before"]},
            "after": {"tags": tagged["diff"]["after"], "registry": pushed["diff"]["after"]},
        },
    }
    if pushed.get("warnings"):
        outcome["warnings"] = pushed["warnings"]
    return outcome
