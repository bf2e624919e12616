"""site.yml gives the engines the registry host's pull-through cache of Docker Hub (registry_proxies) as a registry
mirror: the play's pattern takes Docker Hub's addresses and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def hub_url_pattern() -> re.Pattern:
    plays = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    play = next(p for p in plays if "dockhand__hub_url" in p.get("vars", {}))
    return re.compile(play["vars"]["dockhand__hub_url"])  # Jinja's match test is re.match


@pytest.mark.parametrize("url", ["https://registry-1.docker.io", "https://docker.io/", "https://index.docker.io",
                                 "https://registry.hub.docker.com", "https://registry-1.docker.io:443"])
def test_docker_hub_addresses_are_the_hub(url):
    assert hub_url_pattern().match(url)


@pytest.mark.parametrize("url", ["https://ghcr.io", "https://quay.io", "https://mydocker.io", "https://docker.io.example.com",
                                 "https://registry-1.docker.io/v2/", "http://docker.com"])
def test_other_registries_are_not(url):
    assert not hub_url_pattern().match(url)
