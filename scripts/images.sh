#!/usr/bin/env bash
# Build bake targets/groups (default: everything the tests need) on the engine that answers.
#
#   scripts/images.sh [TARGET_OR_GROUP ...]
#
# Without an engine: a note and exit 0, unless EXECUTOR_REQUIRE_DOCKER=1 (then exit 1).
# Base images: when the official python base can neither be found nor pulled and the local
# Debian bases are missing, `scripts/bases.sh` builds them first (needs root). With
# `docker buildx` present the targets are built by `docker buildx bake`, otherwise by
# `executor images build` (the Engine API; skips up-to-date images).
# EXECUTOR_IMAGES_VERBOSE=1 streams the build output.
# PY selects the Python that has the project installed (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ $# -gt 0 ] || set -- default

say() { printf 'images: %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    if [ "${EXECUTOR_REQUIRE_DOCKER:-0}" = 1 ]; then
        say "no Docker engine answers and EXECUTOR_REQUIRE_DOCKER=1; run \`make engine\` first"
        exit 1
    fi
    say "NOTE: no Docker engine answers; not building images (docker tests will skip)."
    say "      Run \`make engine\` (or set DOCKER_HOST) to build them."
    exit 0
fi

scripts/engine.sh --repair-bridge

local_bases_ready() {
    [ -f .state/bake-vars.json ] || return 1
    local image
    for image in $(sed -n 's/^[A-Z_]*=//p' .state/bases.env); do
        [ "$image" = scratch ] || docker image inspect "$image" >/dev/null 2>&1 || return 1
    done
}

official=$(sed -n '/variable "PYTHON_BASE"/,/}/s/.*default *= *"\(.*\)".*/\1/p' docker-bake.hcl)
if ! local_bases_ready && ! docker image inspect "$official" >/dev/null 2>&1; then
    if ! timeout 300 docker pull -q "$official" >/dev/null 2>&1; then
        say "cannot pull $official; building local Debian base images (scripts/bases.sh)"
        scripts/bases.sh
    fi
fi

if docker buildx version >/dev/null 2>&1; then
    if [ -f .state/bases.env ]; then
        set -a
        # shellcheck disable=SC1091
        . .state/bases.env
        set +a
    fi
    # generator-orval is FROM the node runner: build that first.
    for target in "$@"; do
        case "$target" in
            default | generator-orval) docker buildx bake --load runner-node ;;
        esac
    done
    exec docker buildx bake --load "$@"
fi
# Quiet by default (a failure still prints the build log tail); EXECUTOR_IMAGES_VERBOSE=1 streams.
quiet=-q
[ -z "${EXECUTOR_IMAGES_VERBOSE:-}" ] || quiet=
exec "$PY" -m executor images build $quiet "$@"
