#!/bin/sh
# Start the Node runner with the protocol on fd 3 and fd 1 pointed at stderr, so nothing the
# user code (or its child processes) writes to stdout can corrupt the response.
exec 3>&1 1>&2
EXECUTOR_PROTOCOL_FD=3 exec node "$(dirname "$0")/runner.mjs" "$@"
