// The executor runner for Node.js: one request on stdin, one response on the protocol fd.
//
// Protocol (see executor/protocol.py and tests/vectors/): read {"schema_in", "schema_out",
// "input"}, call executeFunction(input) exported by the user's ES module (/app/execute.mjs,
// else /app/execute.js, or $EXECUTOR_MODULE; the image ships none: NO_TASK without one), answer {"ok": true, "output": ...} or
// {"ok": false, "error": {"message", "code", "details"}} and exit 0. --serve (or
// EXECUTOR_SERVE=1) answers newline-delimited requests, one line each, until EOF. A request's
// "collect": {"path", "max_bytes", "max_files"} empties that directory before the call and answers
// with the regular files the task left there, "files": {"rel/path": "<base64>"} (docs/RUNNERS.md,
// "Files back"). Fork mode
// (EXECUTOR_SERVE=fork or --fork) is run.sh's: a Go supervisor starts this runner one-shot per
// call.
//
// Node cannot dup(2) file descriptors, so the fd swap is done by whoever starts us: the image
// entrypoint (run.sh) moves stdout to fd 3 and stdin to fd 4, points fd 1 at stderr and fd 0
// at /dev/null, and sets EXECUTOR_PROTOCOL_FD=3 EXECUTOR_PROTOCOL_IN_FD=4. Then console.log,
// process.stdout and child processes writing to fd 1 all land on stderr, and nothing user code
// runs can read the requests. Started without it (plain `node runner.mjs`), the runner
// re-executes itself with that wiring.
// No third-party dependencies. All start-up work (the user module's import included) happens
// before stdin is read, so a pre-started runner answers its first request at once.

// node:child_process and node:readline are imported where needed: a fork-mode spare starts
// once per call, and Node without a start-up snapshot pays for every module it loads.
import fs from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const FUNCTION_NAME = "executeFunction";
const DEFAULT_MODULES = ["/app/execute.mjs", "/app/execute.js"];

if (process.argv.includes("--fork") || process.env.EXECUTOR_SERVE === "fork") {
  console.error("executor runner: fork mode starts through run.sh (the executor-forkd supervisor)");
  process.exit(2);
}

const protocolFd = Number.parseInt(process.env.EXECUTOR_PROTOCOL_FD ?? "", 10);
const requestFd = Number.parseInt(process.env.EXECUTOR_PROTOCOL_IN_FD ?? "0", 10);
if (!Number.isInteger(protocolFd)) {
  // Re-run ourselves: fd 3 = our stdout, fd 4 = our stdin, fd 1 = stderr, fd 0 = /dev/null.
  const script = fileURLToPath(import.meta.url);
  const { spawnSync } = await import("node:child_process");
  const child = spawnSync(process.execPath, [script, ...process.argv.slice(2)], {
    stdio: ["ignore", 2, 2, 1, 0],
    env: { ...process.env, EXECUTOR_PROTOCOL_FD: "3", EXECUTOR_PROTOCOL_IN_FD: "4" },
  });
  process.exit(child.status ?? 1);
}

class Failure extends Error {
  constructor(code, message, details) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function writeAll(text) {
  const data = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(protocolFd, data, offset, data.length - offset);
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
      Atomics.wait(sleepCell, 0, 0, 1); // a non-blocking pipe is full: wait a moment
    }
  }
}

function errorResponse(code, message, details) {
  const error = { message, code };
  if (details !== undefined && details !== null) error.details = details;
  return JSON.stringify({ ok: false, error });
}

function describe(err) {
  if (err instanceof Error) {
    return { message: `${err.name}: ${err.message}`, details: err.stack ?? String(err) };
  }
  return { message: `thrown value: ${String(err)}`, details: String(err) };
}

async function load() {
  const given = process.env.EXECUTOR_MODULE;
  const candidates = given ? [given] : DEFAULT_MODULES;
  const path = candidates.find((p) => fs.existsSync(p));
  if (path === undefined) {
    return new Failure(
      "NO_TASK",
      `no task module at ${candidates.join(" or ")}: the stock runner image has no task of ` +
        `its own. Put yours there: ContainerConfig(image, files={'${candidates[0]}': SOURCE}), ` +
        "a mount, or an image built FROM this one; or point EXECUTOR_MODULE at it",
    );
  }
  let mod;
  try {
    mod = await import(pathToFileURL(fs.realpathSync(path)).href);
  } catch (err) {
    const { message, details } = describe(err);
    return new Failure("USER_ERROR", `importing ${path} failed: ${message}`, details);
  }
  const fn = mod[FUNCTION_NAME] ?? mod.default?.[FUNCTION_NAME];
  if (typeof fn !== "function") {
    return new Failure("NO_EXECUTE", `${path} does not export a function ${FUNCTION_NAME}(input)`);
  }
  return fn;
}

const fn = await load();
signalReady();

// Under a fork-mode supervisor (EXECUTOR_READY_FD set: we are its spare), tell it that the
// user module is loaded: one byte on that fd, then close it.
function signalReady() {
  const fd = Number.parseInt(process.env.EXECUTOR_READY_FD ?? "", 10);
  delete process.env.EXECUTOR_READY_FD;
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    fs.writeSync(fd, "\n");
    fs.closeSync(fd);
  } catch (err) {
    console.error("executor runner: cannot signal readiness:", err.message);
  }
}

// When the request carries a "log_marker", write it to stderr as a line once the function has
// finished, before the response, and echo it in the response: the host then knows every log
// line written before it has arrived, without waiting for the process to exit.
async function handle(raw) {
  const { text, marker } = await respond(raw);
  if (marker === undefined) return text;
  fs.writeSync(2, `${marker}\n`);
  return `${text.slice(0, -1)},"log_marker":${JSON.stringify(marker)}}`;
}

async function respond(raw) {
  const done = (text, marker) => ({ text, marker });
  let request;
  try {
    request = JSON.parse(raw);
  } catch (err) {
    return done(errorResponse("BAD_REQUEST", `the request is not valid JSON: ${err.message}`));
  }
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return done(errorResponse("BAD_REQUEST", "the request must be a JSON object"));
  }
  const marker = typeof request.log_marker === "string" ? request.log_marker : undefined;
  if (fn instanceof Failure) return done(errorResponse(fn.code, fn.message, fn.details), marker);
  let collect;
  try {
    collect = collectSpec(request.collect);
    if (collect !== undefined) emptyCollectDir(collect.path); // no earlier call's files come back
  } catch (err) {
    if (err instanceof Failure) return done(errorResponse(err.code, err.message), marker);
    throw err;
  }
  const before = usageNow();
  let output;
  try {
    output = await fn(request.input ?? null);
  } catch (err) {
    const { message, details } = describe(err);
    return done(errorResponse("USER_ERROR", message, details), marker);
  }
  let files;
  if (collect !== undefined) {
    try {
      files = collectFiles(collect);
    } catch (err) {
      if (err instanceof Failure) return done(errorResponse(err.code, err.message), marker);
      throw err;
    }
  }
  try {
    const response = { ok: true, output: output === undefined ? null : output };
    if (files !== undefined) response.files = files;
    response.usage = usageSince(before);
    const text = JSON.stringify(response);
    if (text === undefined) throw new TypeError("JSON.stringify returned nothing");
    return done(text, marker);
  } catch (err) {
    return done(
      errorResponse(
        "OUTPUT_NOT_SERIALIZABLE",
        `the output cannot be encoded as JSON: ${err.name}: ${err.message}`,
      ),
      marker,
    );
  }
}

// --- usage (docs/RUNNERS.md, "Usage") -------------------------------------------------------

// A serve-mode process answers many calls, and its ru_maxrss is the peak over its life: the
// kernel's high-water mark is reset before each call (/proc/self/clear_refs, "5") and read
// from VmHWM after it. Where the reset is refused (gVisor), a serve-mode call reports no peak.
// A one-shot process (fresh, pool, a fork-mode spare) serves one call: its ru_maxrss is it.
let serving = false;

function usageNow() {
  const peakReset = serving && resetPeak();
  return { wall: performance.now(), own: process.resourceUsage(), ticks: childTicks(), peakReset };
}

// The call's usage: CPU seconds of this process (process.resourceUsage) and of the children
// it waited for (cutime + cstime from /proc/self/stat, in 10 ms ticks; Node has no
// RUSAGE_CHILDREN), this process's peak resident set in bytes (children's not known here),
// and the call's wall seconds.
function usageSince(before) {
  const own = process.resourceUsage();
  const cpuMicros =
    own.userCPUTime + own.systemCPUTime - before.own.userCPUTime - before.own.systemCPUTime;
  const cpu = cpuMicros / 1e6 + (childTicks() - before.ticks) / 100;
  let peak = null;
  if (!serving) peak = own.maxRSS * 1024;
  else if (before.peakReset) peak = highWaterMark();
  const wall = (performance.now() - before.wall) / 1000;
  return { cpu_time: round6(cpu), peak_memory: peak, wall_time: round6(wall) };
}

const round6 = (x) => Math.round(Math.max(x, 0) * 1e6) / 1e6;

function resetPeak() {
  try {
    fs.writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

function highWaterMark() {
  try {
    const found = /^VmHWM:\s*(\d+) kB/m.exec(fs.readFileSync("/proc/self/status", "latin1"));
    return found === null ? null : Number(found[1]) * 1024;
  } catch {
    return null;
  }
}

function childTicks() {
  try {
    const stat = fs.readFileSync("/proc/self/stat", "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3
    const ticks = Number(fields[13]) + Number(fields[14]); // cutime, cstime
    return Number.isFinite(ticks) ? ticks : 0;
  } catch {
    return 0;
  }
}

// --- files back (docs/RUNNERS.md, "Files back") ---------------------------------------------

function collectSpec(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    const shape = '{"path", "max_bytes", "max_files"}';
    throw new Failure("BAD_REQUEST", `"collect" must be an object ${shape}`);
  }
  const { path, max_bytes: maxBytes, max_files: maxFiles } = value;
  if (typeof path !== "string" || !path.startsWith("/") || path.replace(/\/+$/, "") === "") {
    throw new Failure("BAD_REQUEST", '"collect.path" must be an absolute directory path');
  }
  for (const [name, limit] of [["max_bytes", maxBytes], ["max_files", maxFiles]]) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new Failure("BAD_REQUEST", `"collect.${name}" must be an integer (>= 0)`);
    }
  }
  return { path, maxBytes, maxFiles };
}

// Create the directory if needed and remove everything in it (symlinks are not followed).
function emptyCollectDir(path) {
  try {
    fs.mkdirSync(path, { recursive: true });
    if (!fs.lstatSync(path).isDirectory()) throw new Error("not a directory");
    for (const name of fs.readdirSync(path, { encoding: "buffer" })) {
      fs.rmSync(Buffer.concat([Buffer.from(`${path}/`), name]), { recursive: true, force: true });
    }
  } catch (err) {
    const why = err.message;
    throw new Failure("COLLECT_FAILED", `cannot prepare the collect directory ${path}: ${why}`);
  }
}

const CONTROL = /[\x00-\x1f\x7f]/;

// The regular files under the directory as {relative path: base64}, never following a symlink.
// maxBytes bounds the files' sizes plus their relative paths' lengths (UTF-8 bytes).
function collectFiles({ path, maxBytes, maxFiles }) {
  const files = {};
  let count = 0;
  let used = 0;
  const tooLarge = (what) =>
    new Failure(
      "COLLECT_TOO_LARGE",
      `the task left ${what} in ${path} (max_bytes=${maxBytes}, max_files=${maxFiles})`,
    );
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  const walk = (dir, prefix) => {
    const names = fs.readdirSync(dir, { encoding: "buffer" }).sort(Buffer.compare);
    for (const raw of names) {
      const name = raw.toString("utf8");
      if (!Buffer.from(name, "utf8").equals(raw)) {
        throw new Failure("COLLECT_FAILED", `a file name in ${path} is not valid UTF-8: ${name}`);
      }
      const full = `${dir}/${name}`;
      const relative = prefix + name;
      const stat = fs.lstatSync(full);
      if (stat.isDirectory()) {
        walk(full, `${relative}/`);
        continue;
      }
      if (!stat.isFile()) continue; // symlinks, FIFOs, sockets, devices: regular files only
      if (CONTROL.test(relative)) {
        throw new Failure(
          "COLLECT_FAILED",
          `a file name in ${path} holds a control character: ${JSON.stringify(relative)}`,
        );
      }
      if (count >= maxFiles) throw tooLarge(`more than ${maxFiles} files`);
      const room = maxBytes - used - Buffer.byteLength(relative);
      const fd = fs.openSync(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      const chunks = [];
      let size = 0;
      try {
        if (!fs.fstatSync(fd).isFile()) continue; // replaced since the lstat
        const buffer = Buffer.alloc(Math.max(Math.min(room + 1, 1 << 20), 1));
        while (size <= room) {
          const want = Math.max(Math.min(room + 1 - size, buffer.length), 1);
          const got = fs.readSync(fd, buffer, 0, want);
          if (got === 0) break;
          chunks.push(Buffer.from(buffer.subarray(0, got)));
          size += got;
        }
      } finally {
        fs.closeSync(fd);
      }
      if (size > room) throw tooLarge(`more than ${maxBytes} bytes`);
      used += Buffer.byteLength(relative) + size;
      count += 1;
      files[relative] = Buffer.concat(chunks).toString("base64");
    }
  };
  try {
    if (!fs.lstatSync(path).isDirectory()) throw new Error("not a directory");
    walk(path.replace(/\/+$/, ""), "");
  } catch (err) {
    if (err instanceof Failure) throw err;
    if (err instanceof RangeError) {
      throw new Failure("COLLECT_FAILED", `the directories in ${path} are nested too deeply`);
    }
    throw new Failure("COLLECT_FAILED", `cannot collect the files in ${path}: ${err.message}`);
  }
  return files;
}

// A user error must never end the process; an unhandled rejection from stray user promises
// is reported on stderr only.
process.on("unhandledRejection", (reason) => {
  console.error("executor runner: unhandled rejection in user code:", reason);
});

const serve = process.argv.includes("--serve") || process.env.EXECUTOR_SERVE === "1";
const requests =
  requestFd === 0 ? process.stdin : fs.createReadStream(null, { fd: requestFd, autoClose: false });
if (serve) {
  serving = true;
  const { default: readline } = await import("node:readline");
  const lines = readline.createInterface({ input: requests, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    writeAll(`${await handle(line)}\n`);
  }
} else {
  const chunks = [];
  for await (const chunk of requests) chunks.push(chunk);
  // Newline-terminated like serve mode: the host stops reading at the newline instead of
  // waiting for the container to exit.
  writeAll(`${await handle(Buffer.concat(chunks).toString("utf8"))}\n`);
}
process.exit(0);
