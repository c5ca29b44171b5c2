// Fork mode: {"spawn": true} starts a detached process (own session, SIGTERM ignored) that
// sleeps input.seconds (default 2) then writes "fork_daemon: survived cleanup" to stderr, and
// answers {"spawned": true}. {"check": true} answers the pids in /proc other than 1 and its
// own, sorted: [] when the cleanup after the previous call killed the daemon.
import { spawn } from "node:child_process";
import fs from "node:fs";

const DAEMON = `
process.on("SIGTERM", () => {});
setTimeout(() => process.stderr.write("fork_daemon: survived cleanup\\n"), Number(process.argv[1]) * 1000);
setInterval(() => {}, 1 << 30);
`;

export function executeFunction(input) {
  if (input?.check) {
    return fs
      .readdirSync("/proc")
      .filter((name) => /^[0-9]+$/.test(name))
      .map(Number)
      .filter((pid) => pid !== 1 && pid !== process.pid)
      .sort((a, b) => a - b);
  }
  if (input?.spawn) {
    const seconds = String(Number(input.seconds ?? 2));
    const child = spawn(process.execPath, ["-e", DAEMON, seconds], {
      detached: true,
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.unref();
    return { spawned: true };
  }
  return null;
}
