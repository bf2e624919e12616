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
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockhand.registry.plugins.module_utils.common import DEFAULT_WORKERS, MAX_WORKERS, DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient, stored_credentials
from ansible_collections.dockhand.registry.plugins.module_utils.reference import Reference, parse
from ansible_collections.dockhand.registry.plugins.module_utils.registry import Credentials, RegistryClient, RegistryUnreachable

# Threads asking the registries for manifest digests (HEAD), at least.
HEAD_WORKERS = 8


def push_options(params: dict[str, Any]) -> dict[str, Any]:
    """``registry_factory``, ``auth_config`` and ``workers`` for push_images/publish_images, from a pushing
    module's parameters (PUSH_ARGSPEC and REGISTRY_AUTH_ARGSPEC)."""
    if not 1 <= params["workers"] <= MAX_WORKERS:
        raise DockhandError("workers must be between 1 and %d, got %d" % (MAX_WORKERS, params["workers"]))
    credentials = Credentials(params["username"], params["password"], stored_credentials)
    return {
        "registry_factory": credentials.client_factory(
            scheme=None if params["scheme"] == "auto" else params["scheme"],
            ca_cert=params["ca_cert"],
            validate_certs=params["validate_certs"],
            timeout=params["timeout"],
            pool_size=max(params["workers"], HEAD_WORKERS),
        ),
        "auth_config": credentials.auth_config,
        "workers": params["workers"],
    }


class ItemsFailed(DockhandError):
    """Some items of a list failed; ``results`` still holds every item's outcome."""

    def __init__(self, message: str, results: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


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

    def forget(self) -> None:
        self._index = None


def repo_digest(image: dict[str, Any], name: str) -> str | None:
    """The manifest digest the engine recorded for ``image`` in repository ``name``."""
    for entry in image.get("RepoDigests") or []:
        repo, _sep, digest = entry.partition("@")
        if repo == name:
            return digest
    return None


# -- image_tag -----------------------------------------------------------------------
@dataclass
class TagItem:
    source: str
    targets: list[str]


def tag_images(engine: EngineClient, items: list[TagItem], check_mode: bool = False) -> dict[str, Any]:
    """Make every target name the source's image ID; report what was (or would be) tagged."""
    errors: list[str] = []
    parsed: list[tuple[Reference, list[Reference]]] = []
    for item in items:
        try:
            targets = [parse(target) for target in item.targets]
            parsed.append((parse(item.source), targets))
        except DockhandError as exc:
            errors.append(str(exc))
            continue
        for target in targets:
            if target.digest:
                errors.append("target %s: a tag cannot name a digest, give <repository>[:<tag>]" % target)
    if errors:
        raise _fail_items("images", errors)
    images = LocalImages(engine)
    sources = []
    for source, _targets in parsed:
        image = images.get(source)
        if image is None:
            errors.append("source image %s not found in the engine" % source)
        sources.append(image)
    if errors:
        raise _fail_items("images", errors)
    wanted: dict[str, str] = {}
    for (_source, targets), image in zip(parsed, sources):
        if image is None:  # narrows the type: validation already failed on missing sources
            raise AssertionError("source %s has no image" % _source)
        for target in targets:
            name = "%s:%s" % (target.name, target.tag_or_default)
            if wanted.setdefault(name, image["Id"]) != image["Id"]:
                errors.append("target %s is given for two different images" % name)
    if errors:
        raise _fail_items("images", sorted(set(errors), key=errors.index))

    results: list[dict[str, Any]] = []
    before: dict[str, str | None] = {}
    after: dict[str, str] = {}
    for (source, targets), image in zip(parsed, sources):
        if image is None:  # narrows the type: validation already failed on missing sources
            raise AssertionError("source %s has no image" % source)
        entry: dict[str, Any] = {"source": str(source), "image_id": image["Id"], "targets": [], "changed": False}
        for target in targets:
            name = "%s:%s" % (target.name, target.tag_or_default)
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
    if errors:
        raise _fail_items("tags", errors, results)
    return {
        "changed": any(entry["changed"] for entry in results),
        "images": results,
        "tagged": [t["name"] for entry in results for t in entry["targets"] if t["changed"]],
        "diff": {"before": before, "after": after},
    }


# -- image_push ----------------------------------------------------------------------
@dataclass
class PushPlan:
    ref: Reference
    image_id: str
    local_digest: str | None
    before: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


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

    ``planned`` maps ``<name>:<tag>`` to the local image that name has (or, in check mode, would have) after a
    tagging step in the same module run, in place of asking the engine.
    ``sources`` maps an image name (as given in ``names``) to the local image it is a tag of. It matters in check
    mode only, where an earlier image_tag task tagged nothing: a name that is not tagged yet is then looked up as
    its source. Also in check mode, a registry that does not answer is taken as empty (an earlier task would
    create it), with a warning; outside check mode it fails the task, as ever.
    """
    sources = sources or {}
    warnings: list[str] = []
    errors: list[str] = []
    refs: list[Reference] = []
    for name in names:
        try:
            ref = parse(name)
        except DockhandError as exc:
            errors.append(str(exc))
            continue
        if not ref.registry:
            errors.append("image %s names no registry: use <registry host[:port]>/%s" % (name, name))
        elif ref.digest:
            errors.append("image %s: push a tag, not a digest" % name)
        else:
            refs.append(ref)
    if errors:
        raise _fail_items("images", errors)
    seen: set[str] = set()
    images = LocalImages(engine)
    plans: list[PushPlan] = []
    for name, ref in zip(names, refs):
        key = "%s:%s" % (ref.name, ref.tag_or_default)
        if key in seen:
            continue
        seen.add(key)
        image = (planned or {}).get(key) or images.get(ref)
        if image is None and check_mode and sources.get(name):
            image = images.get(parse(sources[name]))
        if image is None:
            errors.append("local image %s not found in the engine" % key)
            continue
        plans.append(PushPlan(ref, image["Id"], repo_digest(image, ref.name)))
    if errors:
        raise _fail_items("images", errors)

    # One client (one connection pool, one credential lookup) per registry, not per image.
    registries: dict[str, RegistryClient] = {}
    for plan in plans:
        if plan.ref.registry not in registries:
            registries[plan.ref.registry] = registry_factory(plan.ref.registry)  # type: ignore[index]
            try:
                # Settle the scheme (https or http) once here, not in every HEAD thread at once.
                registries[plan.ref.registry].base_url  # noqa: B018
            except DockhandError:
                pass  # each image's HEAD below reports it
    workers = max(1, workers)
    # Ask the registries first, all at once: an unreachable registry or refused login
    # stops the task before anything is pushed. A manifest HEAD is cheap for the registry,
    # so these run on at least HEAD_WORKERS threads whatever the push worker count.
    with ThreadPoolExecutor(max_workers=max(workers, HEAD_WORKERS)) as pool:

        def head(plan: PushPlan) -> str | None:
            client = registries[plan.ref.registry]
            before = client.manifest_digest(plan.ref.repository, plan.ref.tag_or_default)
            if before and plan.local_digest is None and client.holds_image(plan.ref.repository, before, plan.image_id):
                # The engine has no RepoDigest for this repository (e.g. after docker load), yet the registry holds
                # this very image under the tag: nothing to push, in check mode and in a real run alike.
                plan.local_digest = before
            return before

        futures = [pool.submit(head, plan) for plan in plans]
        for plan, future in zip(plans, futures):
            try:
                plan.before = future.result()
            except RegistryUnreachable as exc:
                if not check_mode:
                    errors.append("%s: %s" % (plan.ref, exc))
                    continue
                warning = "check mode: registry %s does not answer, taken as empty" % plan.ref.registry
                if warning not in warnings:
                    warnings.append(warning)
            except DockhandError as exc:
                errors.append("%s: %s" % (plan.ref, exc))
    if errors:
        raise _fail_items("images", sorted(set(errors), key=errors.index))

    with ThreadPoolExecutor(max_workers=workers) as pool:

        def push(plan: PushPlan) -> dict[str, Any]:
            ref = plan.ref
            name = "%s:%s" % (ref.name, ref.tag_or_default)
            result: dict[str, Any] = {
                "name": name,
                "registry": ref.registry,
                "repository": ref.repository,
                "tag": ref.tag_or_default,
                "image_id": plan.image_id,
                "digest_before": plan.before,
                "digest": plan.before,
                "pushed": False,
                "changed": False,
            }
            if plan.before is not None and plan.before == plan.local_digest:
                return result
            result["pushed"] = True
            if check_mode:
                result["changed"] = True
                result["digest"] = None
                return result
            try:
                result["digest"] = engine.push(ref.name, ref.tag_or_default, auth_config(ref.registry or ""))
            except DockhandError as exc:
                result.update(failed=True, msg=str(exc), digest=None)
                return result
            result["changed"] = result["digest"] != plan.before
            return result

        results = list(pool.map(push, plans))

    failed = [r["msg"] for r in results if r.get("failed")]
    diff = {
        "before": {r["name"]: r["digest_before"] for r in results},
        "after": {r["name"]: r["digest"] or "(new digest after push)" for r in results},
    }
    outcome = {
        "changed": any(r["changed"] for r in results),
        "images": results,
        "pushed": [r["name"] for r in results if r["pushed"] and not r.get("failed")],
        "diff": diff,
    }
    for client in registries.values():
        warnings.extend(w for w in getattr(client, "warnings", []) if w not in warnings)
    if warnings:
        outcome["warnings"] = warnings
    if failed:
        raise _fail_items("pushes", failed, results)
    return outcome


# -- image_publish -------------------------------------------------------------------
def publish_images(
    engine: EngineClient,
    items: list[TagItem],
    registry_factory: Callable[[str], RegistryClient],
    auth_config: Callable[[str], dict[str, str] | None] = lambda registry: None,
    workers: int = DEFAULT_WORKERS,
    check_mode: bool = False,
) -> dict[str, Any]:
    """Tag each source as its targets, then push every target: both steps in one module run.

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
        pushed = push_images(engine, names, registry_factory, auth_config, workers, check_mode, planned=planned)
    except ItemsFailed as exc:
        raise ItemsFailed(str(exc), [dict(r, tagged=r["name"] in tagged["tagged"]) for r in exc.results]) from None
    outcome = {
        "changed": tagged["changed"] or pushed["changed"],
        "images": [dict(r, tagged=r["name"] in tagged["tagged"]) for r in pushed["images"]],
        "tagged": tagged["tagged"],
        "pushed": pushed["pushed"],
        "diff": {
            "before": {"tags": tagged["diff"]["before"], "registry": pushed["diff"]["before"]},
            "after": {"tags": tagged["diff"]["after"], "registry": pushed["diff"]["after"]},
        },
    }
    if pushed.get("warnings"):
        outcome["warnings"] = pushed["warnings"]
    return outcome
