# dockhand.registry — the two commands: `make site` (the main job) and `make test` (every test).
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: site test setup setup-dev engine unit integration molecule lint bench mutants soak clean

## site: deploy the registry on localhost:5000 and publish the demo image (sets everything up first)
site: setup
	ansible-playbook site.yml $(ARGS)

## test: lint, unit, integration and molecule tests, on a real engine and registry
test: setup-dev engine
	scripts/test-stages lint unit integration+molecule

setup:
	scripts/bootstrap requirements.txt

setup-dev:
	scripts/bootstrap requirements-dev.txt

## engine: a running Docker engine and the test fixtures' packages, through the engine role itself
engine: setup
	ansible-playbook playbooks/engine.yml

unit: setup-dev
	python -m pytest -q tests/unit

integration: setup-dev engine
	DH_FLEET_TESTS=$${DH_FLEET_TESTS:-1} python -m pytest -q --durations=15 tests/integration

molecule: setup-dev engine
	scripts/molecule-all

lint: setup-dev
	scripts/lint

bench: setup-dev engine
	scripts/bench

## soak: the lifecycle property test with 5,000 operations (DH_LIFECYCLE_OPS, DH_LIFECYCLE_SEED; docs/maintenance.md)
soak: setup-dev engine
	DH_LIFECYCLE_OPS=$${DH_LIFECYCLE_OPS:-5000} python -m pytest -q -s tests/integration/test_lifecycle.py

## mutants: mutation testing of the critical paths with mutmut (not part of `make test`; docs/development.md)
mutants: setup-dev
	scripts/bootstrap requirements-dev.txt requirements-mutants.txt
	scripts/mutants

clean:
	rm -rf $(VENV) tests/output
