// Fork mode: every call starts from the state right after import. Reports what it found before
// changing anything (a module counter, files in /tmp and /dev/shm, an environment variable),
// then leaves all four behind. Every call must see {"calls":1} and false three times.
import fs from "node:fs";

let calls = 0;

export function executeFunction() {
  calls += 1;
  const seen = {
    calls,
    file_existed: fs.existsSync("/tmp/left-behind"),
    shm_existed: fs.existsSync("/dev/shm/left-behind"),
    env_seen: process.env.EXECUTOR_LEFT_BEHIND !== undefined,
  };
  fs.writeFileSync("/tmp/left-behind", "left by an earlier call\n");
  fs.writeFileSync("/dev/shm/left-behind", "left by an earlier call\n");
  process.env.EXECUTOR_LEFT_BEHIND = "1";
  return seen;
}
