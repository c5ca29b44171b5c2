// Fork mode: allocates and touches memory without bound (outside the V8 heap, so the memory
// cgroup's limit is reached before V8's own heap limit), until the OOM killer ends it.
const kept = [];

export function executeFunction() {
  for (;;) {
    kept.push(Buffer.allocUnsafe(16 << 20).fill(1));
  }
}
