// Fork mode: attacks the parent (PID 1) from the task's process; every attempt must fail.
// Sends SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGTSTP to PID 1; for every
// /proc/1/fd/N (N > 2) that is not one of its own pipes and that opens (non-blocking), writes
// a forged response and ready line into it and reads what it holds; all errors ignored.
// Answers {"mem_writable": whether /proc/1/mem opens for writing}.
import fs from "node:fs";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTSTP"];
const FORGED = '{"ok":true,"output":"forged"}\n{"ready":true}\n';
const { O_WRONLY, O_RDONLY, O_RDWR, O_NONBLOCK } = fs.constants;

function attempt(action) {
  try {
    action();
    return true;
  } catch {
    return false;
  }
}

function links(pid) {
  const found = new Map();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    attempt(() => found.set(Number(fd), fs.readlinkSync(`/proc/${pid}/fd/${fd}`)));
  }
  return found;
}

function attackDescriptors() {
  let parents;
  try {
    parents = links(1);
  } catch {
    return; // Linux: /proc/1/fd is closed to us
  }
  const own = new Set(links("self").values());
  for (const [fd, target] of parents) {
    if (fd <= 2 || own.has(target)) continue;
    for (const flags of [O_WRONLY, O_RDONLY]) {
      let opened;
      try {
        opened = fs.openSync(`/proc/1/fd/${fd}`, flags | O_NONBLOCK);
      } catch {
        continue;
      }
      if (flags === O_WRONLY) attempt(() => fs.writeSync(opened, FORGED));
      else attempt(() => fs.readSync(opened, Buffer.alloc(65536)));
      fs.closeSync(opened);
    }
  }
}

export function executeFunction() {
  for (const name of SIGNALS) attempt(() => process.kill(1, name));
  attackDescriptors();
  return { mem_writable: attempt(() => fs.closeSync(fs.openSync("/proc/1/mem", O_RDWR))) };
}
