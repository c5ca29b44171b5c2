# The project's commands. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv lint typecheck test test-fast test-podman demo bench engine bases images \
        build-runners build-runner-python build-runner-node build-runner-go build-generator-orval clean \
        toolchains

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check executor tests bench examples runners
	$(BIN)/ruff format --check executor tests bench examples runners

typecheck: venv
	$(BIN)/mypy --strict executor

# Unit tests only: no engine needed.
test-fast: venv
	$(BIN)/pytest -m "not docker" -q

test: venv lint typecheck images
	$(BIN)/pytest -q

# The stats example in-process, then (when an engine answers) in a locked-down container;
# builds the Python runner image first if it is missing.
demo: venv
	$(BIN)/python examples/stats_local.py
	@if docker info >/dev/null 2>&1; then \
	  docker image inspect executor/runner-python:latest >/dev/null 2>&1 \
	    || $(MAKE) --no-print-directory build-runner-python; \
	  $(BIN)/python examples/stats_container.py; \
	else \
	  echo "demo: no Docker engine answers, so the container run is skipped (start one with 'make engine')"; \
	fi

# --- engine and images (scripts/*.sh; see docs/RUNNERS.md) -------------------------------------

# Start a Docker engine unless one answers (installs docker.io and runsc as root on Debian);
# `make engine ENGINE=podman` starts Podman's Docker-compatible API service instead
# (scripts/podman.sh: installs podman, copies the runner images over).
ENGINE ?= docker
engine:
	ENGINE=$(ENGINE) scripts/engine.sh

# The Podman subset (README, section Podman): Podman's API service on PODMAN_SOCKET with the
# runner images copied from the Docker engine, then these tests against it. Tests that cannot
# pass on Podman skip with their reason (tests/podman/conftest.py).
PODMAN_SOCKET ?= /run/podman/podman.sock
# Judging and usage on Podman, the fast part (~25 s; the judge image is one of the runner-*
# images scripts/podman.sh copies anyway): every verdict in every language takes a minute more.
PODMAN_JUDGE_TESTS := test_every_container_call_reports_usage \
        test_usage_matches_the_programs_own_getrusage \
        test_node_usage_matches_the_programs_own_resource_usage \
        test_plain_runs_report_usage_and_compile
PODMAN_TESTS := tests/podman tests/container/test_defaults.py tests/container/test_failures.py \
        tests/container/test_pool.py tests/container/test_load.py tests/container/test_files.py \
        tests/container/test_reap.py tests/container/test_deps.py tests/container/test_usage.py \
        tests/security \
        tests/cli/test_engine_commands.py::test_images_prune_removes_derived_images_no_container_uses \
        $(addprefix tests/container/test_judge.py::,$(PODMAN_JUDGE_TESTS))
test-podman: venv images
	PODMAN_SOCKET=$(PODMAN_SOCKET) scripts/podman.sh
	DOCKER_HOST=unix://$(PODMAN_SOCKET) EXECUTOR_REQUIRE_PODMAN=1 \
	  $(BIN)/pytest -q -m "not slow" $(PODMAN_TESTS)

# Local Debian-based base images for machines without a container registry.
bases:
	scripts/bases.sh

# Everything the tests need (runners + orval). Skips up-to-date images; without an engine it
# prints a note and succeeds, unless EXECUTOR_REQUIRE_DOCKER=1.
images: venv toolchains
	PY=$(BIN)/python scripts/images.sh default

# node and go on the host, for the host-process half of the conformance suite.
toolchains:
	scripts/toolchains.sh

build-runners: venv
	PY=$(BIN)/python scripts/images.sh runners

build-runner-python build-runner-node build-runner-go build-generator-orval: venv
	PY=$(BIN)/python scripts/images.sh $(patsubst build-%,%,$@)

# The benchmark suite: writes bench/RESULTS.md and bench/latency.png (needs the engine and images).
bench: venv images
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/suite.py
