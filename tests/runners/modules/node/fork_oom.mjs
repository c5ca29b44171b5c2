// Fork mode: {"grow": true} allocates and touches memory without bound (outside the V8 heap,
// so the memory cgroup's limit is reached before V8's own heap limit) until the OOM killer
// ends the process; any other input answers {"grew": false}.
const kept = [];

export function executeFunction(input) {
  if (!input?.grow) return { grew: false };
  for (;;) {
    kept.push(Buffer.allocUnsafe(16 << 20).fill(1));
  }
}
