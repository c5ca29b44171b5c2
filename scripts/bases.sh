#!/usr/bin/env bash
# Build the local base images from Debian packages (no container registry needed).
#
#   executor-base/python:bookworm     python3 + ca-certificates          (runner-python)
#   executor-base/node:bookworm       nodejs + ca-certificates           (runner-node, orval runtime)
#   executor-base/node-build:bookworm the node base + npm (apt in docker build; orval build only)
#   executor-base/go-build:bookworm   golang-go + ca-certificates        (runner-go build stage)
#
# The Go runtime stays `scratch` (static binary). Images that exist are skipped, so this is
# cheap when /var/lib/docker survives. The bake variables the build must use are written to
# .state/bases.env and .state/bake-vars.json (read by `executor images build`).
#
# Env: EXECUTOR_DEBIAN_MIRROR (default http://deb.debian.org/debian), BASES="python node ..."
# to build a subset, EXECUTOR_REBUILD_BASES=1 to rebuild existing ones, EXECUTOR_BASE_REPO
# (default executor-base) and EXECUTOR_STATE_DIR (default .state) to build a separate set.
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${EXECUTOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
STATE=${EXECUTOR_STATE_DIR:-.state}
LOGDIR=$STATE/bases-logs
BASES=${BASES:-"python node node-build go-build"}

say() { printf 'bases: %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers; run \`make engine\` first"
    exit 1
fi

scripts/engine.sh --repair-bridge  # the node-build step needs the default bridge

packages_for() {
    case "$1" in
        python) echo "python3,ca-certificates" ;;
        node) echo "nodejs,ca-certificates" ;;
        go-build) echo "golang-go,ca-certificates" ;;
        *) say "unknown base $1"; return 1 ;;
    esac
}

tag_for() { echo "${EXECUTOR_BASE_REPO:-executor-base}/$1:$SUITE"; }

# npm's ~300 Debian dependencies defeat debootstrap's resolver, so node-build is the node base
# plus `apt-get install npm`, run by the engine (containers on the default bridge reach the
# Debian mirror). It is a build-stage image only, so it also trusts the host's extra CA
# certificates (EXECUTOR_EXTRA_CA_DIR, default /usr/local/share/ca-certificates): behind a
# TLS-intercepting proxy `npm install` needs them. Runtime images never contain them.
build_node_build() {
    local start tag ctx
    start=$(date +%s)
    tag=$(tag_for node-build)
    ctx=$(mktemp -d /var/tmp/executor-base-node-build.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    mkdir -p "$ctx/ca"
    find "${EXECUTOR_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}" -maxdepth 2 -name '*.crt' \
        -exec cp {} "$ctx/ca/" \; 2>/dev/null || true
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $(tag_for node)
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null \\
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1 || true
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \\
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt \\
    npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
DOCKERFILE
    # Retry once after repairing the bridge: a concurrent `dockerd --bridge=none` can delete it.
    if ! DOCKER_BUILDKIT=0 docker build --force-rm -t "$tag" "$ctx"; then
        scripts/engine.sh --repair-bridge
        if ! DOCKER_BUILDKIT=0 docker build --force-rm -t "$tag" "$ctx"; then
            say "building $tag failed"
            return 1
        fi
    fi
    say "built $tag in $(($(date +%s) - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build_one() {
    local name=$1 tag pkgs root start
    tag=$(tag_for "$name")
    pkgs=$(packages_for "$name")
    start=$(date +%s)
    rm -rf "/var/tmp/executor-base-$name".*  # left by an interrupted run
    root=$(mktemp -d "/var/tmp/executor-base-$name.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" RETURN
    debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$root" "$MIRROR"
    # Keep the image small, and keep it small for anyone who apt-get installs on top of it.
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/01-executor-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
CFG
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/{man,info,locale,lintian}/* \
        "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
        "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
    # The golang-go package ships tests and sources the compiler never reads.
    if [ "$name" = go-build ]; then
        find "$root/usr/lib/go-1."*/src -type d -name testdata -prune -exec rm -rf {} + 2>/dev/null || true
        rm -rf "$root"/usr/lib/go-1.*/test "$root"/usr/share/go-1.*/test
    fi
    chmod 1777 "$root/tmp"
    tar --numeric-owner -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --message "debootstrap --variant=minbase --include=$pkgs $SUITE" \
        - "$tag" >/dev/null
    say "built $tag in $(($(date +%s) - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

todo=()
for name in $BASES; do
    if [ "${EXECUTOR_REBUILD_BASES:-0}" != 1 ] && docker image inspect "$(tag_for "$name")" >/dev/null 2>&1; then
        say "$(tag_for "$name") exists; skipping"
    else
        todo+=("$name")
    fi
done

if [ ${#todo[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "building bases needs root (debootstrap, chroot); missing: ${todo[*]}"
        exit 1
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    mkdir -p "$LOGDIR"
    rm -f "$LOGDIR"/*.done "$LOGDIR"/*.failed
    # Downloads dominate, so build all in parallel; each logs to its own file.
    pids=()
    for name in "${todo[@]}"; do
        say "building $(tag_for "$name") (log: $LOGDIR/$name.log)"
        case "$name" in
            node-build)
                # After the node base: wait for this run's node build when there is one.
                (
                    if [[ " ${todo[*]} " == *" node "* ]]; then
                        while [ ! -e "$LOGDIR/node.done" ]; do
                            [ ! -e "$LOGDIR/node.failed" ] || { echo "the node base failed"; exit 1; }
                            sleep 2
                        done
                    fi
                    build_node_build
                ) >"$LOGDIR/$name.log" 2>&1 &
                ;;
            *)
                (
                    # shellcheck disable=SC2064
                    trap "[ -e '$LOGDIR/$name.done' ] || touch '$LOGDIR/$name.failed'" EXIT
                    build_one "$name"
                    touch "$LOGDIR/$name.done"
                ) >"$LOGDIR/$name.log" 2>&1 &
                ;;
        esac
        pids+=("$!")
    done
    failed=()
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            failed+=("${todo[$i]}")
        fi
    done
    for name in "${todo[@]}"; do grep '^bases: built' "$LOGDIR/$name.log" >&2 || true; done
    if [ ${#failed[@]} -gt 0 ]; then
        for name in "${failed[@]}"; do
            say "FAILED: $(tag_for "$name"); last lines of $LOGDIR/$name.log:"
            tail -n 20 "$LOGDIR/$name.log" >&2
        done
        exit 1
    fi
fi

# Record what the build must use in place of the official bases.
mkdir -p "$STATE"
cat >"$STATE/bases.env" <<ENV
PYTHON_BASE=$(tag_for python)
NODE_BASE=$(tag_for node)
NODE_BUILD_BASE=$(tag_for node-build)
GO_BUILD_BASE=$(tag_for go-build)
GO_RUNTIME_BASE=scratch
ENV
python3 - "$STATE/bases.env" "$STATE/bake-vars.json" <<'PY'
import json, sys
pairs = dict(line.strip().split("=", 1) for line in open(sys.argv[1]) if "=" in line)
with open(sys.argv[2], "w") as f:
    json.dump(pairs, f, indent=2)
    f.write("\n")
PY
say "bake variables recorded in $STATE/bases.env and $STATE/bake-vars.json"
