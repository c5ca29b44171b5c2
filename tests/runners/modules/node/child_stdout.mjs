import { spawnSync } from "node:child_process";
import fs from "node:fs";

export function executeFunction() {
  spawnSync("sh", ["-c", "echo child-wrote-fd1"], { stdio: "inherit" });
  fs.writeSync(1, "direct-wrote-fd1\n");
  return { children: "done" };
}
