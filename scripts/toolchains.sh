#!/usr/bin/env bash
# Host toolchains the conformance suite runs the runners with: node (>= 18) and go (>= 1.19).
# As root on Debian, installs the missing ones (nodejs, golang-go); otherwise prints a note
# (the tests for a missing toolchain skip). Idempotent and quick when both are present.
set -euo pipefail

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    printf 'toolchains: NOTE: %s missing; host-process runner tests for them will skip\n' \
        "${missing[*]}" >&2
    exit 0
fi
printf 'toolchains: installing %s (apt-get)\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
