#!/bin/sh
# Start the Node runner with the protocol on fds 3 (responses) and 4 (requests), fd 1 pointed
# at stderr and fd 0 at /dev/null: nothing the user code (or its child processes) writes to
# stdout can corrupt a response, and nothing it reads from stdin can swallow a request.
exec 3>&1 1>&2 4<&0 0</dev/null
EXECUTOR_PROTOCOL_FD=3 EXECUTOR_PROTOCOL_IN_FD=4 exec node "$(dirname "$0")/runner.mjs" "$@"
