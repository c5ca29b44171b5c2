import { spawnSync } from "node:child_process";
import fs from "node:fs";

export function executeFunction(input) {
  // Neither the function nor a child inheriting stdin may swallow the next request.
  const child = spawnSync("cat", [], { stdio: ["inherit", "pipe", "inherit"] }).stdout.toString();
  return { read: fs.readFileSync(0, "utf8"), child, n: input.n };
}
