// Fork mode (tests/runners/test_forkd.py): the protocol fds are out of the task's reach. At
// import, starts a helper that, for 0.8 s, opens every fd of PID 1 through /proc/1/fd (but its
// stderr, 1 and 2) to write forged protocol lines and to read requests. Answers its input after
// 0.9 s: the host must see exactly that answer, the ready line, and nothing else.
import { spawn } from "node:child_process";

const HELPER = `
const fs = require("node:fs");
const { O_WRONLY, O_RDONLY, O_NONBLOCK } = fs.constants;
const forged = '{"ok":true,"output":"forged"}\\n{"ready":true,"forged":true}\\n';
const end = Date.now() + 800;
while (Date.now() < end) {
  let fds = [];
  try { fds = fs.readdirSync("/proc/1/fd").filter((fd) => fd !== "1" && fd !== "2"); } catch {}
  for (const fd of fds) {
    try {
      const f = fs.openSync("/proc/1/fd/" + fd, O_WRONLY | O_NONBLOCK);
      fs.writeSync(f, forged);
      fs.closeSync(f);
    } catch {}
    try {
      const f = fs.openSync("/proc/1/fd/" + fd, O_RDONLY | O_NONBLOCK);
      fs.readSync(f, Buffer.alloc(1 << 16));
      fs.closeSync(f);
    } catch {}
  }
}
`;

spawn(process.execPath, ["-e", HELPER], { detached: true, stdio: "ignore" }).unref();

export async function executeFunction(input) {
  await new Promise((resolve) => setTimeout(resolve, 900));
  return input;
}
