"""Phase "fresh": site.yml in check mode on a host with no registry changed nothing, and said what it would do."""

from __future__ import annotations

from pathlib import Path

import pytest
from moltest import inspect

pytestmark = pytest.mark.phase("fresh")


def test_no_container(host, mol_vars):
    assert inspect(host, "--type", "container", mol_vars["registry_container_name"]) is None


def test_no_registry_image_built(host, mol_vars):
    assert inspect(host, "--type", "image", mol_vars["registry_image"]) is None
    assert not host.file(mol_vars["registry_image_build_dir"]).exists


def test_no_data_directory(host, mol_vars):
    assert not host.file(mol_vars["registry_data_path"]).exists


def test_nothing_tagged_for_the_registry(host, mol_vars):
    listed = host.check_output("docker image ls --quiet --filter reference='%s/*'" % mol_vars["publish_registry"])
    assert listed == ""


def test_nothing_listens_on_the_port(host, mol_vars):
    assert not host.socket("tcp://%s:%s" % (mol_vars["registry_bind_address"], mol_vars["registry_port"])).is_listening


def test_report_says_what_would_change(report, mol_vars):
    assert report["check_mode"] is True
    assert report["registry_container"]["changed"] is True
    expected = ["%s/%s:%s" % (mol_vars["publish_registry"], i.get("repository") or i["name"], i["tag"])
                for i in mol_vars["mol_publish_base"]]
    assert report["tagged"]["tagged"] == expected
    assert report["pushed"]["pushed"] == expected
    assert all(image["digest_before"] is None for image in report["pushed"]["images"])


def test_only_the_record_was_written(mol_vars):
    # The scenario's directory holds what create/prepare wrote and the check run's record, nothing else.
    written = sorted(p.name for p in Path(mol_vars["mol_root"]).iterdir())
    assert written == ["images", "phase", "report-fresh-check.json"]
