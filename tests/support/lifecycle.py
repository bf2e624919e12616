"""The lifecycle property test (tests/integration/test_lifecycle.py): a seeded, randomized sequence of what users do
to a registry, each step checked by an oracle that shares no code with the collection.

The sequence (one ``random.Random(seed)`` draws every choice): images pushed through the registry API (single- and
multi-platform, layers shared across images and repositories, tags moved, several tags on one digest, Docker and OCI
media types, equal created times), a few through ``image_publish`` with the engine, ``image_sync`` from a second
registry (whole indexes, or some ``platforms``), ``registry_prune`` with random rules, ``registry_gc`` with and
without ``delete_untagged``, pushes racing a prune or a GC window, dangling tags made on disk (as a registry stopped
in the middle of a delete leaves them), and ``registry_info`` compared with the model.

How the collection is run: ``registry_prune``, ``image_sync``, ``registry_info`` and ``registry_gc`` in-process (the
function each module calls: ``run_prune``, ``sync_images``, ``read_catalog``, ``gc.collect``: the module is only
argument parsing around it), and every ``MODULE_EVERY``-th prune and GC through Ansible's module runner, the way users
run them; ``image_publish`` always through the module runner (it needs the engine).

The oracle: the model below (what each tag must point at, computed by this file from what it pushed, including its
own reading of the retention rules), and tests/support/oracle.py to read the registry (every manifest digest-checked,
blobs downloaded and digest-checked the first time they are reached in a repository, HEAD-checked after), and the
registry's storage on disk (the blob set) after every garbage collection: everything the tags reach must still be
there. Nothing here imports the collection except to run the operation under test.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import requests

from support.oracle import OracleError, Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
REPOSITORIES = ["app", "team/web", "tools"]
SOURCE_REPOSITORIES = ["src/base", "src/multi"]
TAGS = ["1.0", "1.1", "1.2", "1.9", "1.9-rc1", "1.10", "2.0", "v3.1", "latest", "stable", "release", "nightly", "edge"]
KEEP_PATTERNS = ["latest", "stable|release", r"v\d+\.\d+", r"1\.1.*", "edge"]
PLATFORMS = [("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")]
DAY = 86400.0


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def natural(tag: str) -> list[tuple[int, int, str]]:
    """Version order of a tag (this file's own reading of the documented order): digit runs as numbers, numbers
    before text, a name before its own extensions."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", tag) if part]


@dataclass
class Image:
    """A manifest the model knows: its bytes, media type, created time (epoch; an index: its newest child's), the
    platform images it names (an index), and the platform it is (an image)."""

    raw: bytes
    media_type: str
    created: float
    children: list[str] = field(default_factory=list)
    platform: tuple[str, str] = ("linux", "amd64")

    @property
    def digest(self) -> str:
        return sha(self.raw)


class Pusher:
    """Writes images into one registry through its HTTP API (its own session: racing threads each have one)."""

    def __init__(self, address: str) -> None:
        self.base = "http://%s" % address
        self.session = requests.Session()

    def blob(self, repository: str, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha(data)
        if self.session.head("%s/v2/%s/blobs/%s" % (self.base, repository, digest)).status_code != 200:
            started = self.session.post("%s/v2/%s/blobs/uploads/" % (self.base, repository))
            started.raise_for_status()
            location = requests.compat.urljoin(self.base, started.headers["Location"])
            done = self.session.put(location + ("&" if "?" in location else "?") + "digest=" + digest, data=data)
            done.raise_for_status()
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def put(self, repository: str, reference: str, image: Image) -> requests.Response:
        return self.session.put(
            "%s/v2/%s/manifests/%s" % (self.base, repository, reference), data=image.raw, headers={"Content-Type": image.media_type}
        )

    def image(self, repository: str, layers: list[bytes], created: float, platform: tuple[str, str], docker: bool) -> Image:
        """An image of ``layers`` (blobs uploaded, manifest not put yet)."""
        layer_type, config_type, manifest_type = (DOCKER_LAYER, DOCKER_CONFIG, DOCKER_MANIFEST) if docker else (OCI_LAYER, OCI_CONFIG, OCI_MANIFEST)
        descriptors = [self.blob(repository, layer, layer_type) for layer in layers]
        stamp = datetime.datetime.fromtimestamp(created, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        config = json.dumps({
            "created": stamp, "os": platform[0], "architecture": platform[1],
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}, "config": {},
        }, sort_keys=True).encode()  # fmt: skip
        body = {"schemaVersion": 2, "mediaType": manifest_type, "config": self.blob(repository, config, config_type), "layers": descriptors}
        return Image(json.dumps(body, indent=3).encode(), manifest_type, created, platform=platform)

    def index(self, children: list[Image], annotation: str) -> Image:
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": c.media_type, "digest": c.digest, "size": len(c.raw), "platform": {"os": c.platform[0], "architecture": c.platform[1]}}
                for c in children
            ],
            "annotations": {"org.example.build": annotation},
        }
        return Image(json.dumps(body).encode(), OCI_INDEX, max(c.created for c in children), [c.digest for c in children])


def tar_layer(text: str) -> bytes:
    data = text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Model:
    """What the registry must hold: ``tags[repository][tag] = digest``, the manifests behind them, and the tags made
    dangling on purpose (listed, manifest gone) until a prune of their repository removes them."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.images: dict[tuple[str, str], Image] = {}
        self.dangling: dict[str, dict[str, str]] = {}  # tag -> the digest whose manifest is gone

    def put(self, repository: str, tag: str | None, image: Image) -> None:
        self.images[(repository, image.digest)] = image
        dangling = self.dangling.get(repository, {})
        for name, digest in list(dangling.items()):
            if digest == image.digest:  # the manifest is back: so is every tag that pointed at it
                self.tags.setdefault(repository, {})[name] = dangling.pop(name)
        if tag is not None:
            self.tags.setdefault(repository, {})[tag] = image.digest
            dangling.pop(tag, None)

    def created(self, repository: str, digest: str) -> float:
        return self.images[(repository, digest)].created

    def prune(self, rules: list[dict[str, Any]], now: float) -> dict[str, set[str]]:
        """The tags the rules drop (this file's own reading of registry_prune's documented rules): per repository the
        first rule whose pattern matches; newest first by created time, equal times by version order highest first;
        tags matching keep_tags kept; of the others the keep_last newest kept, then those younger than
        older_than_days; a dropped tag whose digest a kept tag (or a kept index) references stays."""
        dropped: dict[str, set[str]] = {}
        for repository, tags in self.tags.items():
            rule = next((r for r in rules if re.fullmatch(r["repository"], repository)), None)
            if rule is None:
                continue
            order = sorted(tags, key=lambda t: (self.created(repository, tags[t]), natural(t)), reverse=True)
            keep, candidates, rank = set(), [], 0
            for tag in order:
                if any(re.fullmatch(p, tag) for p in rule.get("keep_tags", [])):
                    keep.add(tag)
                    continue
                rank += 1
                if rule.get("keep_last") is not None and rank <= rule["keep_last"]:
                    keep.add(tag)
                elif rule.get("older_than_days") is not None and self.created(repository, tags[tag]) > now - rule["older_than_days"] * DAY:
                    keep.add(tag)
                else:
                    candidates.append(tag)
            protected = {tags[t] for t in keep} | {c for t in keep for c in self.images[(repository, tags[t])].children}
            dropped[repository] = {t for t in candidates if tags[t] not in protected}
        return dropped

    def forget(self, dropped: dict[str, set[str]]) -> None:
        for repository, tags in dropped.items():
            for tag in tags:
                self.tags[repository].pop(tag, None)


class Lifecycle:
    """One run: a target registry (container managed by registry_container, its data on ``data``), a source registry
    for image_sync, the model, the random sequence and the checks."""

    MODULE_EVERY = 5

    def __init__(self, seed: int, target: str, source: str, container: str, data: Path, workdir: Path, prefix: str, label: str) -> None:
        import random

        self.seed = seed
        self.rng = random.Random(seed)
        self.target, self.source = target, source
        self.container, self.data, self.workdir, self.prefix, self.label = container, data, workdir, prefix, label
        self.oracle, self.source_oracle = Registry(target), Registry(source)
        self.pusher, self.source_pusher = Pusher(target), Pusher(source)
        self.model, self.source_model = Model(), Model()
        self.start = time.time()
        self.clock = 0
        self.log: list[str] = []
        self.walked: set[tuple[str, str]] = set()  # (repository, manifest digest) walked since the last destructive step
        self.downloaded: set[tuple[str, str]] = set()  # (repository, blob) downloaded and digest-checked once
        self.reachable: set[str] = set()
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}  # per kind of operation, its checks included
        self.figures: dict[str, Any] = {"gc_blobs_removed": 0, "unreachable_left_after_gc": [], "restored": 0, "skipped": 0,
                                        "dangling_removed": 0, "race_pushes": 0}  # fmt: skip
        self.pool = [tar_layer("shared layer %d of the lifecycle test\n" % n) for n in range(8)]
        self.engine_publishes = 0
        self.prunes = 0
        self.gcs = 0

    # -- drawing ------------------------------------------------------------------------------------------------
    def created(self) -> float:
        """A created time: some whole days back (plus half a day: never near an older_than_days boundary), a tick
        later than the last one (or, now and then, equal to it)."""
        if self.rng.random() > 0.1:
            self.clock += 1
        return self.start - (self.rng.randrange(0, 6) + 0.5) * DAY + self.clock

    def layers(self, unique: str) -> list[bytes]:
        chosen = self.rng.sample(self.pool, self.rng.randrange(1, 3))
        if self.rng.random() < 0.7:
            chosen.append(tar_layer("own layer %s\n" % unique))
        return chosen

    def new_image(self, pusher: Pusher, repository: str, platform: tuple[str, str] | None = None) -> Image:
        self.clock += 1
        return pusher.image(
            repository, self.layers("%s %d %f" % (repository, self.clock, self.rng.random())), self.created(),
            platform or ("linux", "amd64"), docker=self.rng.random() < 0.3,
        )  # fmt: skip

    # -- operations ----------------------------------------------------------------------------------------------
    def op_push(self) -> str:
        repository, tag = self.rng.choice(REPOSITORIES), self.rng.choice(TAGS)
        image = self.new_image(self.pusher, repository)
        self.pusher.put(repository, tag, image).raise_for_status()
        self.model.put(repository, tag, image)
        return "push %s:%s -> %s" % (repository, tag, image.digest[:19])

    def op_retag(self) -> str:
        held = [(r, t, d) for r, tags in self.model.tags.items() for t, d in tags.items()]
        if not held:
            return self.op_push()
        repository, _tag, digest = self.rng.choice(held)
        tag = self.rng.choice(TAGS)
        image = self.model.images[(repository, digest)]
        self.pusher.put(repository, tag, image).raise_for_status()
        self.model.put(repository, tag, image)
        return "retag %s@%s as %s" % (repository, digest[:19], tag)

    def _index(self, pusher: Pusher, model: Model, repository: str) -> Image:
        children = []
        for platform in self.rng.sample(PLATFORMS, self.rng.randrange(2, 4)):
            reuse = [model.images[(repository, d)] for d in model.tags.get(repository, {}).values()
                     if not model.images[(repository, d)].children and model.images[(repository, d)].platform == platform]  # fmt: skip
            child = self.rng.choice(reuse) if reuse and self.rng.random() < 0.3 else self.new_image(pusher, repository, platform)
            pusher.put(repository, child.digest, child).raise_for_status()
            model.put(repository, None, child)
            children.append(child)
        self.clock += 1
        return pusher.index(children, "%s-%d" % (repository, self.clock))

    def op_index(self) -> str:
        repository, tag = self.rng.choice(REPOSITORIES), self.rng.choice(TAGS)
        index = self._index(self.pusher, self.model, repository)
        self.pusher.put(repository, tag, index).raise_for_status()
        self.model.put(repository, tag, index)
        return "index %s:%s -> %s (%d platforms)" % (repository, tag, index.digest[:19], len(index.children))

    def seed_source(self) -> None:
        for repository in SOURCE_REPOSITORIES:
            for tag in ("1.0", "1.1", "2.0"):
                if repository.endswith("multi"):
                    image = self._index(self.source_pusher, self.source_model, repository)
                else:
                    image = self.new_image(self.source_pusher, repository)
                self.source_pusher.put(repository, tag, image).raise_for_status()
                self.source_model.put(repository, tag, image)

    def op_sync(self) -> str:
        from ansible_collections.dockhand.registry.plugins.module_utils.registry import Credentials
        from ansible_collections.dockhand.registry.plugins.module_utils.sync import sync_images

        source = self.rng.choice(SOURCE_REPOSITORIES)
        tag = self.rng.choice(sorted(self.source_model.tags[source]))
        repository, dest_tag = self.rng.choice([*REPOSITORIES, "mirror/" + source.split("/")[1]]), self.rng.choice(TAGS)
        image = self.source_model.images[(source, self.source_model.tags[source][tag])]
        platforms = None
        if image.children and self.rng.random() < 0.5:
            chosen = [self.source_model.images[(source, d)] for d in image.children]
            platforms = sorted({"%s/%s" % c.platform for c in self.rng.sample(chosen, self.rng.randrange(1, len(chosen) + 1))})
        factory = Credentials(None, None).client_factory(scheme="http", timeout=30, pool_size=4)
        result = sync_images(
            factory, factory, images=[{"src": "%s/%s:%s" % (self.source, source, tag), "dest": "%s/%s:%s" % (self.target, repository, dest_tag)}],
            platforms=platforms,
        )  # fmt: skip
        assert not result.get("failed") and not result["images"][0]["failed"], result
        got = result["images"][0]["digest"]
        children = [self.source_model.images[(source, d)] for d in image.children]
        if platforms is None:
            assert got == image.digest, (got, image.digest)
            copied = image
        else:
            kept = [c for c in children if "%s/%s" % c.platform in platforms]
            served = self.oracle.manifest(repository, got)
            assert served is not None and [m["digest"] for m in served.children()] == [c.digest for c in kept], (platforms, served)
            copied = Image(served.raw, served.media_type, max(c.created for c in kept), [c.digest for c in kept])
        for child in children:
            if child.digest in copied.children:
                self.model.put(repository, None, child)
        self.model.put(repository, dest_tag, copied)
        return "sync %s:%s -> %s:%s%s (%s)" % (source, tag, repository, dest_tag, " platforms %s" % platforms if platforms else "", got[:19])

    def op_publish_engine(self) -> str:
        from support.runner import run_module

        if self.engine_publishes >= 3:
            return self.op_push()
        self.engine_publishes += 1
        repository, tag = self.rng.choice(REPOSITORIES), self.rng.choice(TAGS)
        context = self.workdir / ("build-%d" % self.clock)
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text("FROM scratch\nLABEL %s=%s\nCOPY f /f\n" % (self.label, self.prefix))
        (context / "f").write_text("engine image %d of seed %d\n" % (self.clock, self.seed))
        local = "%slifecycle:%d" % (self.prefix, self.clock)
        subprocess.run(["docker", "build", "-q", "-t", local, str(context)], check=True, capture_output=True)
        result = run_module("image_publish", {"images": [{"source": local, "targets": ["%s/%s:%s" % (self.target, repository, tag)]}]})
        assert not result.get("failed") and result["pushed"], result
        served = self.oracle.manifest(repository, tag)
        assert served is not None
        config = json.loads(self._blob(repository, served.body()["config"]["digest"]))
        created = datetime.datetime.fromisoformat(config["created"][:26].rstrip("Z") + "+00:00").timestamp()
        self.model.put(repository, tag, Image(served.raw, served.media_type, created))
        subprocess.run(["docker", "rmi", "-f", local, "%s/%s:%s" % (self.target, repository, tag)], capture_output=True, check=False)
        return "image_publish %s:%s (engine) -> %s" % (repository, tag, served.digest[:19])

    def _blob(self, repository: str, digest: str) -> bytes:
        parts: list[bytes] = []
        self.oracle.blob(repository, digest, sink=parts.append)
        return b"".join(parts)

    def _racing_pushes(self, stop: threading.Event, pushed: list[tuple[str, str, Image]]) -> None:
        """Fresh images (new digests, layers shared with the rest) pushed until ``stop``; only those the registry took
        (a read-only registry answers 405) count."""
        pusher = Pusher(self.target)
        number = 0
        while not stop.is_set():
            number += 1
            repository = REPOSITORIES[number % len(REPOSITORIES)]
            tag = "race-%d-%d" % (self.clock, number)
            try:
                image = pusher.image(repository, [self.pool[number % 8], tar_layer("race %d %d %d\n" % (self.seed, self.clock, number))],
                                     self.start - 0.5 * DAY + self.clock, ("linux", "amd64"), docker=False)  # fmt: skip
                if pusher.put(repository, tag, image).status_code == 201:
                    pushed.append((repository, tag, image))
            except requests.RequestException:
                pass  # refused upload (read-only), a connection cut by the switch: not pushed
            time.sleep(0.02)

    def _with_race(self, race: bool, call: Callable[[], Any]) -> tuple[Any, list]:
        pushed: list[tuple[str, str, Image]] = []
        if not race:
            return call(), pushed
        stop = threading.Event()
        thread = threading.Thread(target=self._racing_pushes, args=(stop, pushed))
        thread.start()
        try:
            result = call()
        finally:
            stop.set()
            thread.join()
        self.figures["race_pushes"] += len(pushed)
        return result, pushed

    def op_prune(self) -> str:
        from ansible_collections.dockhand.registry.plugins.module_utils.prune import run_prune
        from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient
        from support.runner import run_module

        self.prunes += 1
        rules = []
        for _n in range(self.rng.randrange(1, 3)):
            rule: dict[str, Any] = {"repository": self.rng.choice([*REPOSITORIES, ".*", "team/.*"])}
            rule["keep_tags"] = self.rng.sample(KEEP_PATTERNS, self.rng.randrange(0, 3))
            if self.rng.random() < 0.8:
                rule["keep_last"] = self.rng.randrange(0, 5)
            if self.rng.random() < 0.4 or "keep_last" not in rule:
                rule["older_than_days"] = self.rng.randrange(0, 6)
            rules.append(rule)
        race = self.rng.random() < 0.3
        if race:
            # Racing pushes land before or after the prune reads the repository: their tags are kept by name, so that
            # the rules drop the same tags either way (the race is with the deletes).
            for rule in rules:
                rule["keep_tags"] = rule["keep_tags"] + ["race-.*"]
        dropped = self.model.prune(rules, time.time())
        through_module = self.prunes % self.MODULE_EVERY == 0

        def call() -> dict:
            if through_module:
                return run_module("registry_prune", {"registry": self.target, "rules": rules})
            return run_prune(RegistryClient(self.target, scheme="http", pool_size=16), rules)

        result, pushed = self._with_race(race, call)
        assert not result.get("failed"), result
        self.model.forget(dropped)
        for repository in list(self.model.dangling):
            if any(re.fullmatch(r["repository"], repository) for r in rules):
                self.figures["dangling_removed"] += len(self.model.dangling.pop(repository))
        for repository, tag, image in pushed:
            self.model.put(repository, tag, image)
        self.figures["restored"] += len(result.get("restored", []))
        self.figures["skipped"] += len(result.get("skipped", []))
        self._destroyed()
        return "prune%s%s %s: %d tags dropped, %d deleted, %d racing pushes" % (
            " (module)" if through_module else "", " racing" if race else "", json.dumps(rules),
            sum(len(t) for t in dropped.values()), len(result["deleted"]), len(pushed))

    def op_gc(self, untagged: bool | None = None, race: bool | None = None) -> str:
        from ansible_collections.dockhand.registry.plugins.module_utils.engine import EngineClient
        from ansible_collections.dockhand.registry.plugins.module_utils.gc import collect
        from support.runner import run_module

        self.gcs += 1
        drawn = self.rng.random() < 0.6, self.rng.random() < 0.3
        untagged = drawn[0] if untagged is None else untagged
        race = drawn[1] if race is None else race
        through_module = self.gcs % self.MODULE_EVERY == 0
        before = self.disk_blobs()

        def call() -> dict:
            if through_module:
                return run_module("registry_gc", {"name": self.container, "delete_untagged": untagged, "wait_timeout": 60})
            return collect(EngineClient, self.container, None, 60, False, untagged)

        result, pushed = self._with_race(race, call)
        assert not result.get("failed"), result
        for repository, tag, image in pushed:
            self.model.put(repository, tag, image)
        self._destroyed()
        self.log[-1] += " gc delete_untagged=%s%s" % (untagged, " racing" if race else "")
        self.check()
        after = self.disk_blobs()
        lost = sorted(self.reachable - after)
        assert not lost, "GC removed %d blobs the tags reach: %s" % (len(lost), lost[:5])
        self.figures["gc_blobs_removed"] += len(before - after)
        if untagged and not race:
            self.figures["unreachable_left_after_gc"].append(len(after - self.reachable))
        # Dangling tags: registry_gc may remove them in its window (it is allowed to); the model follows the registry.
        for repository, tags in list(self.model.dangling.items()):
            listed = set(self.oracle.tags(repository))
            self.model.dangling[repository] = {t: d for t, d in tags.items() if t in listed}
        return "gc%s delete_untagged=%s%s: %d blobs removed, %d racing pushes" % (
            " (module)" if through_module else "", untagged, " racing" if race else "", len(before - after), len(pushed))

    def op_dangle(self) -> str:
        """A tag whose manifest is gone, as a registry stopped between a delete's two steps leaves it (on disk: the
        manifest's revision link removed while a tag still points at it)."""
        held = [(r, t, d) for r, tags in self.model.tags.items() for t, d in tags.items()
                if sum(1 for x in tags.values() if x == d) == 1 and not self._referenced(r, d)]  # fmt: skip
        if not held:
            return self.op_push()
        repository, tag, digest = self.rng.choice(sorted(held))
        link = self.data / "docker/registry/v2/repositories" / repository / "_manifests/revisions/sha256" / digest.split(":")[1]
        shutil.rmtree(link)
        self.model.tags[repository].pop(tag)
        self.model.dangling.setdefault(repository, {})[tag] = digest
        self._destroyed()
        return "dangle %s:%s (revision of %s removed on disk)" % (repository, tag, digest[:19])

    def _referenced(self, repository: str, digest: str) -> bool:
        return any(digest in self.model.images[(repository, d)].children for d in self.model.tags.get(repository, {}).values())

    def op_info(self) -> str:
        from ansible_collections.dockhand.registry.plugins.module_utils.catalog import read_catalog
        from ansible_collections.dockhand.registry.plugins.module_utils.registry import RegistryClient

        listed = read_catalog(RegistryClient(self.target, scheme="http", pool_size=8))
        got = {r["name"]: {t["tag"]: t["digest"] for t in r["tags"]} for r in listed["repositories"] if r["tags"]}
        want = {r: dict(t) for r, t in self.model.tags.items() if t}
        assert got == want, "registry_info differs from the model: %s" % _difference(got, want)
        dangling = {r: set(t) for r, t in listed["dangling"].items()}
        assert dangling == {r: set(t) for r, t in self.model.dangling.items() if t}, (dangling, self.model.dangling)
        return "info: %d repositories, %d tags, %d dangling" % (len(got), sum(len(t) for t in got.values()), sum(len(t) for t in dangling.values()))

    # Each kind of operation with its weight (the chance it is drawn at a step).
    OPERATIONS: ClassVar[list[tuple[str, int]]] = [
        ("push", 30), ("retag", 10), ("index", 9), ("sync", 8), ("prune", 14), ("gc", 3), ("dangle", 2), ("info", 3), ("publish_engine", 1),
    ]  # fmt: skip

    def step(self, number: int) -> None:
        kinds, weights = zip(*self.OPERATIONS)
        kind = self.rng.choices(kinds, weights)[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        self.log.append("%4d %s %s (failed in the middle)" % (number, stamp, kind))
        started = time.monotonic()
        self.log[-1] = "%4d %s %s" % (number, stamp, getattr(self, "op_" + kind)())
        self.check()
        self.seconds[kind] = self.seconds.get(kind, 0.0) + time.monotonic() - started

    # -- the checks ------------------------------------------------------------------------------------------------
    def _destroyed(self) -> None:
        """After a step that deletes: every kept tag is walked again (blobs HEAD-checked)."""
        self.walked.clear()

    def walk(self, repository: str, digest: str) -> None:
        """Every manifest and blob ``repository@digest`` reaches, read through the oracle: manifests digest-checked,
        each blob downloaded and digest-checked the first time this repository reaches it, HEAD-checked after."""
        if (repository, digest) in self.walked:
            return
        served = self.oracle.manifest(repository, digest)
        if served is None:
            raise OracleError("%s@%s, which a kept tag reaches, is not in the registry" % (repository, digest))
        self.reachable.add(digest)
        for child in served.children():
            self.walk(repository, child["digest"])
        for blob in served.blobs():
            self.reachable.add(blob["digest"])
            if (repository, blob["digest"]) in self.downloaded:
                size = self.oracle.head_blob(repository, blob["digest"])
                if size != blob["size"]:
                    raise OracleError("%s: blob %s answers %s, expected %d bytes" % (repository, blob["digest"], size, blob["size"]))
            else:
                self.oracle.blob(repository, blob["digest"], blob["size"])
                self.downloaded.add((repository, blob["digest"]))
        self.walked.add((repository, digest))

    def check(self) -> None:
        """The registry holds what the model says: per repository exactly the model's tags (and its dangling ones),
        each at its digest, everything each reaches readable and intact."""
        self.reachable = set()
        for repository in sorted(set(self.model.tags) | set(self.model.dangling)):
            want = self.model.tags.get(repository, {})
            listed = set(self.oracle.tags(repository))
            allowed = set(want) | set(self.model.dangling.get(repository, {}))
            if not set(want) <= listed <= allowed:
                raise OracleError("%s lists %s; the model: %s (dangling allowed: %s)" % (
                    repository, sorted(listed, key=natural), sorted(want, key=natural), sorted(self.model.dangling.get(repository, {}))))
            for tag, digest in want.items():
                now = self.oracle.head_manifest(repository, tag)
                if now != digest:
                    raise OracleError("%s:%s is at %s, the model: %s" % (repository, tag, now, digest))
            # Everything each tag reaches: read again only after a step that deleted.
            for tag, digest in sorted(want.items()):
                try:
                    self._reach(repository, digest)
                except OracleError as exc:
                    image = self.model.images.get((repository, digest))
                    served = self.oracle.manifest(repository, tag)
                    raise OracleError("%s:%s (%s%s): %s [served: %s]" % (
                        repository, tag, digest, ", an index of %s" % image.children if image and image.children else "", exc,
                        served.raw.decode()[:600] if served else None)) from None

    def _reach(self, repository: str, digest: str) -> None:
        image = self.model.images.get((repository, digest))
        if (repository, digest) in self.walked and image is not None:
            self.reachable.add(digest)
            for child in image.children:
                self._reach(repository, child)
            body = json.loads(image.raw)
            if not image.children:
                self.reachable.update(b["digest"] for b in [body["config"], *body.get("layers", [])])
            return
        self.walk(repository, digest)

    def full_check(self) -> int:
        """Every tag of the model read back whole (every blob downloaded again and digest-checked); the tags read."""
        count = 0
        for repository, tags in sorted(self.model.tags.items()):
            for tag, digest in sorted(tags.items()):
                self.oracle.verify_tag_whole(repository, tag, digest)
                count += 1
        return count

    def disk_blobs(self) -> set[str]:
        """The blobs (manifests included) the registry's storage holds: blobs/sha256/xx/<hex>/data."""
        root = self.data / "docker/registry/v2/blobs/sha256"
        return {"sha256:" + p.parent.name for p in root.glob("*/*/data")} if root.exists() else set()


def _difference(got: dict, want: dict) -> str:
    lines = []
    for repository in sorted(set(got) | set(want)):
        a, b = got.get(repository, {}), want.get(repository, {})
        for tag in sorted(set(a) | set(b), key=natural):
            if a.get(tag) != b.get(tag):
                lines.append("%s:%s registry %s model %s" % (repository, tag, a.get(tag), b.get(tag)))
    return "; ".join(lines[:10])
