# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make N small, distinct images FROM scratch in one go, for the benchmark.

Each image has one layer holding one file, ``/bench``, whose text names the run and
the image's index, so every image (and every run) has its own layer, config and
manifest digest: nothing is shared with an earlier run or with another image.
The images are written as one ``docker save`` style archive and loaded with a single
``docker load``: what ``docker build`` of ``FROM scratch`` + ``COPY bench /bench``
would produce, without N builds.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def archive(names: list[str], nonce: str) -> bytes:
    """A ``docker load`` archive holding one image per name (``repo:tag``)."""
    files: dict[str, bytes] = {}
    manifest = []
    for index, name in enumerate(names):
        layer = _tar({"bench": ("dockhand bench %s image %d\n" % (nonce, index)).encode()})
        diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Cmd": ["/bench"], "Labels": {"dockhand.bench": nonce}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "COPY bench /bench"}],
            },
            sort_keys=True,
        ).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        layer_dir = diff_id.split(":")[1]
        files[config_name] = config
        files[layer_dir + "/layer.tar"] = layer
        manifest.append({"Config": config_name, "RepoTags": [name], "Layers": [layer_dir + "/layer.tar"]})
    files["manifest.json"] = json.dumps(manifest).encode()
    return _tar(files)


def load(names: list[str], nonce: str, docker: str = "docker") -> None:
    subprocess.run([docker, "load", "-q"], input=archive(names, nonce), check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    # images.py NONCE NAME... : load the images (a manual check)
    load(sys.argv[2:], sys.argv[1])
