// Fork mode: how this spare was started (its command line, as the kernel has it) and what a task
// started from the start-up snapshot sees: execArgv without the blob, a working worker thread,
// its own Math.random sequence.
import fs from "node:fs";
import { Worker } from "node:worker_threads";

export async function executeFunction() {
  const worker = await new Promise((resolve, reject) => {
    const code = "require('node:worker_threads').parentPort.postMessage(6 * 7)";
    const thread = new Worker(code, { eval: true });
    thread.on("message", resolve);
    thread.on("error", reject);
  });
  return {
    cmdline: fs.readFileSync("/proc/self/cmdline", "utf8").split("\0").filter(Boolean),
    execArgv: process.execArgv,
    worker,
    random: Math.random(),
    env: process.env.EXECUTOR_NODE_SNAPSHOT ?? null,
  };
}
