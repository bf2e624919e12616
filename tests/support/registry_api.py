"""Build images in a registry through its HTTP API alone (no engine): blobs, image manifests, an index.

Used by the image_sync tests and the sync benchmark. Plain HTTP registries on loopback, no auth.

    python3 tests/support/registry_api.py index localhost:5600 repo tag      # two platforms + an OCI index
    python3 tests/support/registry_api.py images localhost:5600 repo 200      # tags t000..t199, one small layer each
    python3 tests/support/registry_api.py big localhost:5600 repo tag 256 /tmp/dir   # one layer of 256 MiB
    python3 tests/support/registry_api.py family localhost:5600 bench 200 repos      # 200 repositories, one base layer
    python3 tests/support/registry_api.py family localhost:5600 bench/app 200 tags   # 200 tags of one repository
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SESSION = requests.Session()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(name: str, content: str) -> bytes:
    """A layer the engine can unpack: an uncompressed tar holding one file (fixed mtime: same input, same digest)."""
    data = content.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push_blob(registry: str, repository: str, data: bytes | Path, media_type: str = OCI_LAYER) -> dict:
    """Upload one blob (bytes, or a file streamed from disk); return its descriptor."""
    if isinstance(data, Path):
        sha = hashlib.sha256()
        with data.open("rb") as stream:
            for piece in iter(lambda: stream.read(1 << 20), b""):
                sha.update(piece)
        digest, size = "sha256:" + sha.hexdigest(), data.stat().st_size
    else:
        digest, size = _digest(data), len(data)
    base = "http://%s" % registry
    if SESSION.head("%s/v2/%s/blobs/%s" % (base, repository, digest)).status_code != 200:
        answer = SESSION.post("%s/v2/%s/blobs/uploads/" % (base, repository))
        answer.raise_for_status()
        location = requests.compat.urljoin(base, answer.headers["Location"])
        separator = "&" if "?" in location else "?"
        if isinstance(data, Path):
            with data.open("rb") as stream:
                done = SESSION.put(location + separator + "digest=" + digest, data=stream)
        else:
            done = SESSION.put(location + separator + "digest=" + digest, data=data)
        done.raise_for_status()
    return {"mediaType": media_type, "digest": digest, "size": size}


def put_manifest(registry: str, repository: str, reference: str, body: dict, media_type: str) -> tuple[bytes, str]:
    data = json.dumps(body, indent=2).encode()
    answer = SESSION.put(
        "http://%s/v2/%s/manifests/%s" % (registry, repository, reference), data=data, headers={"Content-Type": media_type}
    )
    answer.raise_for_status()
    return data, _digest(data)


def push_image(
    registry: str, repository: str, tag: str | None, layers: list[bytes | Path], os_name: str = "linux", arch: str = "amd64"
) -> dict:
    """An OCI image of ``layers``; tagged when ``tag``, else stored by digest. Returns its index descriptor."""
    layer_descriptors = [push_blob(registry, repository, layer) for layer in layers]
    config = json.dumps(
        {
            "architecture": arch,
            "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descriptors]},
            "config": {"Cmd": ["/file"]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": push_blob(registry, repository, config, OCI_CONFIG),
        "layers": layer_descriptors,
    }
    data = json.dumps(manifest, indent=2).encode()
    digest = put_manifest(registry, repository, tag or _digest(data), manifest, OCI_MANIFEST)[1]
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data), "platform": {"architecture": arch, "os": os_name}}


def push_index(registry: str, repository: str, tag: str, marker: str = "") -> str:
    """Two platform images (linux/amd64, linux/arm64) stored by digest, and an OCI index of them under ``tag``."""
    children = [
        push_image(registry, repository, None, [tar_layer(arch, "%s layer of %s %s\n" % (arch, repository, marker))], "linux", arch)
        for arch in ("amd64", "arm64")
    ]
    digest = put_manifest(
        registry, repository, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, OCI_INDEX
    )[1]
    return digest


def push_images(registry: str, repository: str, count: int, marker: str = "", workers: int = 8) -> list[str]:
    """``count`` tags t000, t001, ... of one small layer each (own content, so every tag has its own blobs)."""

    def one(number: int) -> str:
        tag = "t%03d" % number
        return push_image(registry, repository, tag, [tar_layer("file", "image %d of %s %s\n" % (number, repository, marker))])["digest"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(count)))


def push_family(registry: str, name: str, count: int, layout: str, marker: str = "", workers: int = 8) -> list[str]:
    """``count`` images sharing one base layer, each with its own layer and configuration: with layout ``repos``
    one tag ``1.0`` in each of the repositories ``<name>/r000``, ``<name>/r001``...; with ``tags`` the tags
    t000, t001... of repository ``name``. Returns the references (without the registry)."""
    base = tar_layer("base", "base layer %s\n" % marker)
    refs = ["%s/r%03d:1.0" % (name, n) for n in range(count)] if layout == "repos" else ["%s:t%03d" % (name, n) for n in range(count)]
    if layout not in ("repos", "tags"):
        raise SystemExit("layout must be repos or tags, got %r" % layout)

    def one(number: int) -> str:
        repository, tag = refs[number].rsplit(":", 1)
        push_image(registry, repository, tag, [base, tar_layer("file", "image %d of %s %s\n" % (number, name, marker))])
        return refs[number]

    one(0)  # the base layer once before the parallel writes
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [refs[0], *pool.map(one, range(1, count))]


def big_layer(directory: Path, mebibytes: int) -> Path:
    """A file of ``mebibytes`` MiB of random bytes (written 1 MiB at a time)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("layer-%d.bin" % mebibytes)
    if not path.exists() or path.stat().st_size != mebibytes << 20:
        with path.open("wb") as stream:
            for _mebibyte in range(mebibytes):
                stream.write(os.urandom(1 << 20))
    return path


def main(argv: list[str]) -> None:
    command, registry, repository = argv[:3]
    if command == "index":
        print(push_index(registry, repository, argv[3], argv[4] if len(argv) > 4 else ""))
    elif command == "images":
        print("\n".join(push_images(registry, repository, int(argv[3]), argv[4] if len(argv) > 4 else "")))
    elif command == "family":
        print("\n".join(push_family(registry, repository, int(argv[3]), argv[4], argv[5] if len(argv) > 5 else "")))
    elif command == "big":
        layer = big_layer(Path(argv[5]), int(argv[4]))
        print(push_image(registry, repository, argv[3], [layer])["digest"])
    else:
        raise SystemExit("unknown command %r" % command)


if __name__ == "__main__":
    main(sys.argv[1:])
