# Copyright (c) dockhand.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs on the client host (copied there by hafrontend.py; Python standard library only): a plain ``docker pull``
or ``docker push`` loop, one operation at a time, with no retry of its own.

    python3 clientloop.py pull REFERENCE LOG STOP_FILE MAX_OPS MAX_SECONDS
    python3 clientloop.py push REPOSITORY LOG STOP_FILE MAX_OPS MAX_SECONDS

pull: ``docker pull REFERENCE``, then ``docker rmi REFERENCE`` (so the next pull downloads the layer again).
push: a new one-layer image (``docker import`` of a tar with fresh random bytes) tagged ``REPOSITORY:latest``,
``docker push``, ``docker rmi``; every push replaces the tag, so the manifest before it is left untagged (garbage a
collection removes).
One JSON line per operation in LOG: ``{"n", "start", "end", "rc", "output"}`` (epoch seconds; ``not_pushed`` when the
image could not be made), and a last line
``{"done": reason}``. The loop stops at STOP_FILE, after MAX_OPS operations or MAX_SECONDS, whichever comes first.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, check=False)


def layer_tar(path: str, size: int) -> None:
    data = os.urandom(size)
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("payload")
        info.size = len(data)
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))


def main(argv: list[str]) -> int:
    kind, target, log, stop_file = argv[:4]
    max_ops, max_seconds = int(argv[4]), float(argv[5])
    started = time.time()
    reason = "count"
    with open(log, "a", encoding="utf-8") as out:
        for n in range(1, max_ops + 1):
            if os.path.exists(stop_file):
                reason = "stop"
                break
            if time.time() - started > max_seconds:
                reason = "time"
                break
            prepared = None
            if kind == "push":
                tar = log + ".layer.tar"
                layer_tar(tar, 64 * 1024)
                reference = "%s:latest" % target
                prepared = run("docker", "import", tar, reference)
                begin = time.time()
                done = run("docker", "push", reference) if prepared.returncode == 0 else prepared
            else:
                reference = target
                begin = time.time()
                done = run("docker", "pull", reference)
            end = time.time()
            record = {"n": n, "start": begin, "end": end, "rc": done.returncode, "output": (done.stdout + done.stderr)[-4000:]}
            if prepared is not None and prepared.returncode != 0:
                record["not_pushed"] = "docker import failed"
            out.write(json.dumps(record) + "\n")
            out.flush()
            run("docker", "rmi", reference)
        out.write(json.dumps({"done": reason}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
