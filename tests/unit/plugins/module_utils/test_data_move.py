"""A registry container moved to another data location: refused when it would come back empty, copied when asked,
against a fake engine whose data locations hold files (its archive API reads and writes them as tar streams)."""

from __future__ import annotations

import io
import tarfile

import pytest

from ansible_collections.dockhand.registry.plugins.module_utils.common import DockhandError
from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import DATA_TARGET, InvalidSpec
from ansible_collections.dockhand.registry.plugins.module_utils.data_move import MARKER, first_repository
from ansible_collections.dockhand.registry.tests.unit.plugins.module_utils.test_container import (  # noqa: F401  # pylint: disable=unused-import
    FakeEngine,
    converge,
    no_http,  # autouse: readiness answered at once
    spec,
)

REPO_FILE = "docker/registry/v2/repositories/%s/_manifests/tags/1.0/current/link"


class DataEngine(FakeEngine):
    """FakeEngine whose data locations (a bind path or a volume) hold files: ``{location: {relative path: bytes}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, dict[str, bytes]] = {}
        self.fail_copy = False
        self.read_members = 0

    def create_container(self, name, image, env, port_bindings, mounts, restart_policy, **kwargs):
        if not port_bindings:  # a helper container: no port
            port_bindings = {"5000/tcp": ("127.0.0.1", 0)}
        return super().create_container(name, image, env, port_bindings, mounts, restart_policy, **kwargs)

    def location(self, container) -> str:
        found = self._find(container)
        mount = next(m for m in found["Mounts"] if m["Destination"] == DATA_TARGET)
        return mount["Name"] if mount["Type"] == "volume" else mount["Source"]

    def archive(self, container, path):
        files = self.data.get(self.location(container), {})
        inside = path[len(DATA_TARGET):].strip("/").removesuffix("/.").removesuffix(".")
        chosen = {k: v for k, v in files.items() if k == inside or k.startswith(inside + "/") or not inside}
        if not chosen:
            return None
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in sorted(chosen.items()):
                info = tarfile.TarInfo(("./" + name[len(inside):].lstrip("/")) if inside != name else name.split("/")[-1])
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        raw = buffer.getvalue()

        def chunks():
            for start in range(0, len(raw), 512):
                self.read_members += 1
                yield raw[start:start + 512]

        return chunks()

    def put_archive(self, container, path, data):
        if self.fail_copy and not isinstance(data, bytes):
            raise DockhandError("cannot write into container %s: no space left on device" % container)
        raw = data if isinstance(data, bytes) else b"".join(data)
        files = self.data.setdefault(self.location(container), {})
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar:
                handle = tar.extractfile(member)
                if handle is not None:
                    files[member.name.removeprefix("./")] = handle.read()


def holding(engine: DataEngine, location: str, *repositories: str) -> None:
    engine.data[location] = {REPO_FILE % repo: b"sha256:" + b"a" * 64 for repo in repositories}
    engine.data[location]["docker/registry/v2/blobs/sha256/aa/" + "a" * 64 + "/data"] = b"{}"


@pytest.fixture
def moved(tmp_path):
    """A registry on data_path old/ holding two repositories; the new data_path new/ is empty."""
    engine = DataEngine()
    converge(engine, spec(tmp_path, data_path=str(tmp_path / "old")))
    holding(engine, str(tmp_path / "old"), "team/app", "tool")
    return engine


def test_a_move_onto_an_empty_location_is_refused_naming_both_and_the_option(tmp_path, moved):
    for check_mode in (True, False):
        with pytest.raises(InvalidSpec) as refused:
            converge(moved, spec(tmp_path, data_path=str(tmp_path / "new")), check_mode=check_mode)
        message = str(refused.value)
        assert "data_path %s" % (tmp_path / "old") in message and "data_path %s" % (tmp_path / "new") in message
        assert "data_move: copy" in message and "data_move: adopt_empty" in message and "team/app" in message
        assert "\n" not in message
    assert moved.location("dh-it-reg") == str(tmp_path / "old") and moved._find("dh-it-reg")["State"]["Running"]


def test_copy_moves_the_data_while_the_old_registry_is_stopped(tmp_path, moved):
    wanted = spec(tmp_path, data_path=str(tmp_path / "new"), data_move="copy")
    check = converge(moved, wanted, check_mode=True)
    action = "copy the registry data from data_path %s to data_path %s" % (tmp_path / "old", tmp_path / "new")
    assert check["changed"] and action in check["actions"] and str(tmp_path / "new") not in moved.data
    assert check["diff"]["after"]["mounts"] != check["diff"]["before"]["mounts"]
    done = converge(moved, wanted)
    assert action in done["actions"] and done["data_copied"]["from"] == "data_path %s" % (tmp_path / "old")
    new_files = moved.data[str(tmp_path / "new")]
    assert {k: v for k, v in new_files.items() if k != MARKER} == moved.data[str(tmp_path / "old")]
    assert new_files[MARKER].startswith(b"complete: copy of data_path")
    # The old registry was stopped before the copy, the new one started after it.
    assert moved.calls.index("stop " + done["diff"]["before"]["id"]) < moved.calls.index("start " + done["container"]["id"])
    assert converge(moved, wanted)["changed"] is False


def test_a_failed_copy_keeps_the_old_registry_and_is_done_again_next_time(tmp_path, moved):
    wanted = spec(tmp_path, data_path=str(tmp_path / "new"), data_move="copy")
    moved.fail_copy = True
    with pytest.raises(DockhandError, match="no space left on device"):
        converge(moved, wanted)
    assert moved.location("dh-it-reg") == str(tmp_path / "old") and moved._find("dh-it-reg")["State"]["Running"]
    assert moved.data[str(tmp_path / "new")][MARKER].startswith(b"incomplete")
    # Without data_move the half-copied location still counts as empty, and says why.
    with pytest.raises(InvalidSpec, match="a copy that did not finish"):
        converge(moved, spec(tmp_path, data_path=str(tmp_path / "new")))
    moved.fail_copy = False
    converge(moved, wanted)
    assert moved.data[str(tmp_path / "new")][MARKER].startswith(b"complete")


def test_adopt_empty_starts_empty_on_purpose(tmp_path, moved):
    done = converge(moved, spec(tmp_path, volume="fresh", data_path=None, data_move="adopt_empty"))
    assert "start on the empty volume fresh (data_move adopt_empty; the data stays in data_path %s)" % (tmp_path / "old") in done["actions"]
    assert moved.location("dh-it-reg") == "fresh" and "fresh" not in moved.data


def test_a_location_that_holds_a_registry_or_an_empty_old_one_needs_no_option(tmp_path, moved):
    holding(moved, str(tmp_path / "moved-by-hand"), "team/app")
    done = converge(moved, spec(tmp_path, data_path=str(tmp_path / "moved-by-hand")))
    assert done["changed"] and "data_copied" not in done
    moved.data.pop(str(tmp_path / "moved-by-hand"))
    assert converge(moved, spec(tmp_path, data_path=str(tmp_path / "new")))["changed"]


def test_the_repository_is_found_without_reading_the_whole_registry(tmp_path):
    engine = DataEngine()
    converge(engine, spec(tmp_path))
    holding(engine, str(tmp_path / "data"), *["repo%03d" % n for n in range(200)])
    assert first_repository(engine, "dh-it-reg") == "repo000"
    assert engine.read_members < 40  # of about 800 pieces of 512 bytes: two per repository


def test_data_move_is_validated():
    from ansible_collections.dockhand.registry.plugins.module_utils.container_spec import RegistrySpec

    with pytest.raises(InvalidSpec, match="data_move 'move' is not one of refuse, copy, adopt_empty"):
        RegistrySpec(name="r", image="registry:2", data_path="/tmp/x", data_move="move").validate()
