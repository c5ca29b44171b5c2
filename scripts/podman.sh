#!/usr/bin/env bash
# Bring up Podman's Docker-compatible API service (idempotent) and give it the runner images.
#
#   scripts/podman.sh               # `make engine ENGINE=podman`; then DOCKER_HOST=unix://$PODMAN_SOCKET
#   scripts/podman.sh --no-images   # the service only
#
# A service that already answers on $PODMAN_SOCKET (default /run/podman/podman.sock) is kept.
# Otherwise, as root on Debian: install podman when missing, start `podman system service
# --time=0` in the background (log: $EXECUTOR_PODMAN_LOG, default /var/log/executor-podman.log)
# and wait for it. Where the service may not raise its resource limits (no CAP_SYS_RESOURCE, as
# in some VMs and containers) and containers.conf sets no default_ulimits, write defaults equal
# to the service's own hard limits and restart it: a rootful Podman otherwise asks runc for
# 1048576 open files and processes, and every container fails ("error setting rlimit").
# Then copy the runner images (executor/runner-*:latest and their other tags, plus
# EXECUTOR_PODMAN_IMAGES) from the Docker engine that `docker` reaches (DOCKER_HOST as given to
# this script) with `docker save | podman load`, skipping those already there with the same id. They arrive as localhost/executor/...; the
# executor asks for executor/... and Podman resolves the short name.
set -euo pipefail

SOCKET=${PODMAN_SOCKET:-/run/podman/podman.sock}
URL="unix://$SOCKET"
LOG=${EXECUTOR_PODMAN_LOG:-/var/log/executor-podman.log}
CONF=/etc/containers/containers.conf
WAIT_SECONDS=${EXECUTOR_ENGINE_WAIT:-60}

say() { printf 'podman: %s\n' "$*" >&2; }
answers() { docker -H "$URL" version >/dev/null 2>&1; }

start_service() {
    mkdir -p "$(dirname "$SOCKET")" "$(dirname "$LOG")"
    rm -f "$SOCKET"
    # Started in the socket's directory: conmon (2.1.6) writes its OOM marker file "oom" into
    # the working directory of the Podman process, so never start it inside a checkout.
    (cd "$(dirname "$SOCKET")" && exec nohup podman system service --time=0 "$URL" >>"$LOG" 2>&1 </dev/null) &
    SERVICE_PID=$!
    for _ in $(seq 1 "$WAIT_SECONDS"); do
        answers && return 0
        kill -0 "$SERVICE_PID" 2>/dev/null || break
        sleep 1
    done
    say "the service did not answer on $URL; last lines of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    exit 1
}

# Whether process $1 holds CAP_SYS_RESOURCE (bit 24 of its effective set).
has_sys_resource() {
    local caps
    caps=$(awk '/^CapEff:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
    [ -n "$caps" ] || return 0
    (((16#$caps >> 24) & 1))
}

# The hard limit $2 ("Max open files", ...) of process $1; -1 for unlimited, as Podman spells it.
hard_limit() { awk -v what="$2" '$0 ~ what {print ($(NF - 1) == "unlimited" ? -1 : $(NF - 1))}' "/proc/$1/limits"; }

if answers; then
    say "a Podman service answers on $URL; keeping it"
else
    if [ "$(id -u)" != 0 ]; then
        say "no Podman service answers on $URL and this is not root: start one with" \
            "\`podman system service --time=0 $URL\`"
        exit 1
    fi
    if ! command -v podman >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || { say "podman is missing and there is no apt-get"; exit 1; }
        for _ in $(seq 1 300); do  # another apt run holds the lock: wait for it
            pgrep -x apt-get >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1 || break
            sleep 1
        done
        say "installing podman (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends podman >/dev/null
    fi
    command -v docker >/dev/null 2>&1 || { say "the docker CLI is needed (apt-get install docker.io)"; exit 1; }
    say "starting podman system service on $URL (log: $LOG)"
    start_service
    if ! has_sys_resource "$SERVICE_PID" && ! grep -qs '^[[:space:]]*default_ulimits' "$CONF"; then
        nofile=$(hard_limit "$SERVICE_PID" "Max open files")
        nproc=$(hard_limit "$SERVICE_PID" "Max processes")
        say "the service may not raise its limits (no CAP_SYS_RESOURCE): writing" \
            "default_ulimits nofile=$nofile nproc=$nproc to $CONF and restarting it"
        mkdir -p "$(dirname "$CONF")"
        if grep -qs '^\[containers\]' "$CONF"; then
            sed -i "/^\[containers\]/a default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]" "$CONF"
        else
            printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
                "$nofile" "$nofile" "$nproc" "$nproc" >>"$CONF"
        fi
        kill "$SERVICE_PID"
        wait "$SERVICE_PID" 2>/dev/null || true
        start_service
    fi
    say "ready: $(docker -H "$URL" version --format 'Podman {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null || echo '?')"
fi

[ "${1:-}" != --no-images ] || exit 0

# The images to copy: the Docker engine's executor/runner-*:latest (with every tag of the same
# image, e.g. :VERSION), plus EXECUTOR_PODMAN_IMAGES (space-separated refs). One save per image
# keeps all its tags.
if ! docker info >/dev/null 2>&1; then
    say "NOTE: no Docker engine answers to copy images from; build them on Podman instead"
    exit 0
fi
declare -A wanted=() tags_of=()
while read -r ref id; do
    [[ "$ref" != executor/runner-*:latest ]] || wanted[$id]=1
done < <(docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}')
for ref in ${EXECUTOR_PODMAN_IMAGES:-}; do
    wanted[$(docker image inspect --format '{{.Id}}' "$ref")]=1
done
while read -r ref id; do
    [ -n "${wanted[$id]:-}" ] && [[ "$ref" != *:\<none\> ]] || continue
    tags_of[$id]+="$ref "
done < <(docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}')
for id in "${!tags_of[@]}"; do
    read -r -a refs <<<"${tags_of[$id]}"
    missing=()
    for ref in "${refs[@]}"; do
        have=$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
        [ "sha256:${have#sha256:}" = "$id" ] || missing+=("$ref")
    done
    [ ${#missing[@]} -gt 0 ] || continue
    say "copying ${refs[*]} (docker save | podman load)"
    docker save "${refs[@]}" | podman load -q >/dev/null
done
say "images ready on $URL: $(podman images --format '{{.Repository}}:{{.Tag}}' | grep -c executor/) executor tags"
