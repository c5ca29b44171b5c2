#!/usr/bin/env bash
# Bring up a Docker engine if none answers (idempotent).
#
# An engine that already answers (DOCKER_HOST or the default socket) is left alone. Otherwise,
# as root on Debian: install docker.io and runsc (gVisor) when missing, register runsc as a
# runtime with networking off, start dockerd in the background and wait for it. A dockerd that
# owns the pid file but does not answer is waited for until it answers (starting) or exits
# (stopping: then a new one starts).
# Log: /var/log/executor-dockerd.log (override with EXECUTOR_DOCKERD_LOG).
# `engine.sh --repair-bridge` only repairs a running engine's bridge (see repair_bridge).
# ENGINE=podman (`make engine ENGINE=podman`) brings up Podman's API service instead
# (scripts/podman.sh).
set -euo pipefail

if [ "${ENGINE:-docker}" = podman ]; then
    exec "$(dirname "$0")/podman.sh" "$@"
fi
[ "${ENGINE:-docker}" = docker ] || { echo "engine: unknown ENGINE=$ENGINE (docker or podman)" >&2; exit 2; }

LOG=${EXECUTOR_DOCKERD_LOG:-/var/log/executor-dockerd.log}
DAEMON_JSON=${EXECUTOR_DAEMON_JSON:-/etc/docker/daemon.json}
PIDFILE=${EXECUTOR_DOCKERD_PIDFILE:-/var/run/docker.pid}
WAIT_SECONDS=${EXECUTOR_ENGINE_WAIT:-60}

say() { printf 'engine: %s\n' "$*" >&2; }

# A second dockerd started on this host with `--bridge=none` deletes the interface docker0
# (moby's removeDefaultBridgeInterface), after which every container on the default bridge of
# the first engine fails with "could not find bridge docker0". Recreate it, as root, when the
# local engine's bridge network still expects it.
repair_bridge() {
    [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 || return 0
    ip link show docker0 >/dev/null 2>&1 && return 0
    local name subnet address
    name=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null) || return 0
    [ "$name" = docker0 ] || return 0
    subnet=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}')
    address=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
    address=$(python3 -c 'import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
print(f"{sys.argv[2] or next(net.hosts())}/{net.prefixlen}")' "$subnet" "$address")
    ip link add docker0 type bridge && ip addr add "$address" dev docker0 && ip link set docker0 up
    say "recreated the missing bridge docker0 ($address); another dockerd with --bridge=none removes it"
}

# Register runsc (merge with any existing daemon.json; keep other settings) with networking off
# and `--oci-seccomp`, so that the library's seccomp profile applies inside gVisor too
# (docs/SECURITY.md). Prints "changed" when daemon.json was rewritten.
register_runsc() {
    command -v runsc >/dev/null 2>&1 || return 0
    mkdir -p "$(dirname "$DAEMON_JSON")"
    python3 - "$DAEMON_JSON" "$(command -v runsc)" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
wanted = {"path": runsc, "runtimeArgs": ["--network=none", "--oci-seccomp"]}
if config.get("runtimes", {}).get("runsc") != wanted:
    config.setdefault("runtimes", {})["runsc"] = wanted
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    print("changed")
PY
}

# The dockerd that owns the pid file, if it still runs (other dockerds, such as the tests'
# private engines with their own pid files and sockets, are not ours to wait for).
owner_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] \
        && [ "$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$pid/stat" 2>/dev/null)" != Z ] \
        && echo "$pid"  # a zombie (exited, not yet reaped by its parent) is gone
}

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    repair_bridge
    # Our own local engine with an older runsc registration: register it anew and reload.
    if [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" = 0 ] && pid=$(owner_pid) \
        && [ "$(register_runsc)" = changed ]; then
        kill -HUP "$pid"
        say "runsc registered with --oci-seccomp; dockerd (pid $pid) reloaded its runtimes"
    fi
    [ "${1:-}" = --repair-bridge ] || say "an engine answers (${DOCKER_HOST:-default socket}); nothing to do"
    exit 0
fi
[ "${1:-}" != --repair-bridge ] || exit 0

if [ -n "${DOCKER_HOST:-}" ]; then
    say "DOCKER_HOST=$DOCKER_HOST is set but does not answer; refusing to start a local dockerd"
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    say "no engine answers and this is not root: start Docker yourself or set DOCKER_HOST"
    exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]} and no apt-get: install Docker yourself"
        exit 1
    fi
    # Another apt run (e.g. a provisioning step) holds the lock: wait for it instead of failing.
    for _ in $(seq 1 300); do
        pgrep -x apt-get >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1 || break
        sleep 1
    done
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # runsc is optional (gVisor); docker.io is not.
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    apt-get install -y -qq --no-install-recommends runsc >/dev/null 2>&1 \
        || say "runsc could not be installed; the runsc runtime will be unavailable"
fi

register_runsc >/dev/null

ready() {
    docker info >/dev/null 2>&1 || return 1
    say "engine ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')," \
        "runtimes: $(docker info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}' 2>/dev/null || echo '?')"
}

# A dockerd that does not answer is starting (it will answer) or stopping (it will exit, e.g.
# right after a SIGTERM): wait for either, and start a new one only once it is gone.
if pid=$(owner_pid); then
    say "dockerd (pid $pid) runs but does not answer: waiting for it to answer or exit"
    for _ in $(seq 1 "$WAIT_SECONDS"); do
        ! ready || exit 0
        owner_pid >/dev/null || break
        sleep 1
    done
    if owner_pid >/dev/null; then
        say "dockerd (pid $pid) neither answered nor exited within ${WAIT_SECONDS}s; last lines of $LOG:"
        tail -n 40 "$LOG" >&2 || true
        exit 1
    fi
    say "dockerd (pid $pid) exited"
fi
if [ -e "$PIDFILE" ]; then
    say "removing stale $PIDFILE (its dockerd is gone)"
    rm -f "$PIDFILE"
fi
say "starting dockerd (log: $LOG)"
mkdir -p "$(dirname "$LOG")"
if [ "$PIDFILE" = /var/run/docker.pid ]; then
    nohup dockerd >>"$LOG" 2>&1 </dev/null &
else
    nohup dockerd --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
    ! ready || exit 0
    sleep 1
done

say "dockerd did not answer within ${WAIT_SECONDS}s; last lines of $LOG:"
tail -n 40 "$LOG" >&2 || true
exit 1
