#!/bin/sh
# Start the Node runner with the protocol on fds 3 (responses) and 4 (requests), fd 1 pointed
# at stderr and fd 0 at /dev/null: nothing the user code (or its child processes) writes to
# stdout can corrupt a response, and nothing it reads from stdin can swallow a request.
#
# Fork mode (EXECUTOR_SERVE=fork or --fork; docs/RUNNERS.md): the Go supervisor executor-forkd
# (next to this script, else on PATH) replaces this shell as PID 1 and starts this script
# again, one-shot, as the spare for each call. It refuses to run unless it is PID 1.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
fork=
[ "${EXECUTOR_SERVE:-}" = fork ] && fork=1
for arg in "$@"; do
  [ "$arg" = --fork ] && fork=1
done
if [ -n "$fork" ]; then
  if [ "$$" != 1 ]; then
    echo "executor runner: fork mode runs only as PID 1 (the container's init), not as pid $$" >&2
    exit 2
  fi
  forkd="$here/executor-forkd"
  if [ ! -x "$forkd" ]; then
    forkd="$(command -v executor-forkd)" || {
      echo "executor runner: fork mode needs executor-forkd, found neither next to $0 nor on PATH" >&2
      exit 2
    }
  fi
  # The spares start from the image's start-up snapshot (snapshot.cjs) when this node loads
  # it (checked once here: a blob fits only the node binary that built it);
  # EXECUTOR_NODE_SNAPSHOT=0 turns it off.
  blob="$here/runner.blob"
  if [ "${EXECUTOR_NODE_SNAPSHOT:-}" != 0 ] && [ -r "$blob" ]; then
    if EXECUTOR_NODE_SNAPSHOT_CHECK=1 node --snapshot-blob "$blob" </dev/null >/dev/null 2>&1; then
      export EXECUTOR_NODE_SNAPSHOT="$blob"
    else
      echo "executor runner: this node cannot load $blob; fork-mode spares start without it" >&2
      export EXECUTOR_NODE_SNAPSHOT=0
    fi
  else
    export EXECUTOR_NODE_SNAPSHOT=0
  fi
  exec "$forkd" --runner node -- "$0"
fi
if [ -n "${EXECUTOR_READY_FD:-}" ]; then
  # A fork-mode spare: the OOM killer's first choice before any user code runs, and the
  # readiness fd kept clear of the protocol fds set up below.
  echo 1000 >/proc/self/oom_score_adj 2>/dev/null || :
  case $EXECUTOR_READY_FD in
    3) exec 5>&3 3>&- && EXECUTOR_READY_FD=5 ;;
    4) exec 5>&4 4>&- && EXECUTOR_READY_FD=5 ;;
  esac
fi
exec 3>&1 1>&2 4<&0 0</dev/null
if [ -n "${EXECUTOR_READY_FD:-}" ] && [ "${EXECUTOR_NODE_SNAPSHOT:-0}" != 0 ]; then
  EXECUTOR_PROTOCOL_FD=3 EXECUTOR_PROTOCOL_IN_FD=4 exec node --snapshot-blob "$EXECUTOR_NODE_SNAPSHOT" "$here/runner.mjs" "$@"
fi
EXECUTOR_PROTOCOL_FD=3 EXECUTOR_PROTOCOL_IN_FD=4 exec node "$here/runner.mjs" "$@"
