// Fork mode (tests/runners/test_forkd.py): orphans are reaped by PID 1. Starts a shell that
// leaves a short-lived grandchild behind and exits, so the grandchild is re-parented to PID 1;
// once it has ended, answers the pids of zombie processes: [] when PID 1 reaps orphans.
import { spawnSync } from "node:child_process";
import fs from "node:fs";

function zombies() {
  const found = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) found.push(Number(name));
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

export async function executeFunction() {
  spawnSync("/bin/sh", ["-c", "sleep 0.2 & exit 0"], { stdio: "ignore" });
  await new Promise((resolve) => setTimeout(resolve, 800));
  return { zombies: zombies() };
}
