// The code runner: runs a Node.js program (source text) as its own process for CodeExecutor.
//
// The Node runner loads this file as its task module (EXECUTOR_MODULE=/opt/executor/code.mjs) in
// every mode (one-shot, serve, fork), so the program runs as a child of the task process:
//
// 1. a fresh working directory $TMPDIR/executor-code-XXXX/work; the program is saved there as
//    main.mjs when it has import/export statements (an ES module), else main.cjs (CommonJS,
//    `require` works), and the input files are written next to it;
// 2. `node main.{mjs,cjs} ARGV...` in that directory, in a process group of its own, stdin fed
//    from input.stdin, stdout and stderr read through pipes: each kept up to its cap
//    (max_stdout/max_stderr bytes; more is read, dropped and flagged), and, in stream mode
//    (forward), each line copied to this process's stderr as it comes, tagged \x1eo (stdout) or
//    \x1ee (stderr) so the host can tell them apart;
// 3. at `timeout` (just under the call's own) the program's group is killed: timed_out; when
//    the program exits, whatever it left running in its group is killed too;
// 4. the files back: every regular file under the working directory that is new, or whose
//    content differs from the input file of that name (the program file counts as an input),
//    within max_collect_bytes (sizes plus relative path lengths) and max_collect_files; past a
//    limit files_error says so, and no file comes back;
// 5. the directory is removed.
//
// Output: {stdout, stderr, exit_code, stdout_truncated, stderr_truncated, timed_out, duration,
// files, files_error, usage}; exit_code is 128 + N for a program killed by signal N.
//
// Usage: the program is started with `--require usage.cjs` (written next to the working
// directory), which writes process.resourceUsage() (CPU seconds, peak RSS) to fd 3 on exit;
// a program killed before it could (a limit, a signal) has the last values polled from
// /proc/<pid>/stat and /proc/<pid>/status (VmHWM; VmRSS where gVisor has no VmHWM).
//
// Judging (task.tests, time_limit, memory_limit; the semantics of runners/python/code.py): each
// test runs as its own process in a fresh copy of the working directory, killed at the CPU limit
// (polled), 3x it in wall time, a peak RSS over memory_limit (polled) or more than max_stdout
// bytes of output; its verdict (TLE, MLE, OLE, RE, WA, AC) and usage come back in `tests`, the
// first failure's verdict (or AC) in `verdict`. A checker (task.checker, JavaScript: the only
// language of this image; the host refuses others) runs per test as `node main.{mjs,cjs}
// INPUT OUTPUT ANSWER` in a fresh copy of its directory, exit 0 = AC, what it prints the
// test's message. No dependencies.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const TAGS = { stdout: Buffer.from("\x1eo"), stderr: Buffer.from("\x1ee") };
const LINE_PIECE = 64 * 1024; // a longer line is forwarded in pieces (stream mode stays live)
const DRAIN_MS = 500; // after the exit, how long to wait for what leftovers hold in the pipes
const CONTROL = /[\x00-\x1f\x7f]/;
const ESM = /^\s*(import\s*[\w{*'"]|export\s)/m;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const POLL_MS = 20; // how often the limits are checked against /proc
const TICK = 100; // USER_HZ: clock ticks per second in /proc/<pid>/stat
// The program's preload: its own CPU time and peak RSS, written to fd 3 as it exits.
// Only the main thread of this process reports; the program's own child processes and workers
// do not get it (it leaves process.execArgv, which they inherit).
// The preload also reports once as the program starts ("start": a floor for a program killed
// before its exit handler and before the first poll, e.g. by its own signal), and makes the
// program's stdout and stderr block on a full pipe as every other language's do: Node makes
// them non-blocking and queues what does not fit in memory, so a program flooding its output
// would stall at the socket's buffer and grow until MLE instead of reaching the output limit.
const USAGE_PRELOAD = `"use strict";
const at = process.execArgv.indexOf("--require");
if (at >= 0) process.execArgv.splice(at, 2);
if (require("node:worker_threads").isMainThread) {
  const report = (start) => {
    try {
      const u = process.resourceUsage();
      const line = { cpu: (u.userCPUTime + u.systemCPUTime) / 1e6, rss: u.maxRSS * 1024 };
      if (start) line.start = true;
      require("node:fs").writeSync(3, JSON.stringify(line) + "\\n");
    } catch {}
  };
  report(true);
  process.on("exit", () => report(false));
  for (const stream of [process.stdout, process.stderr]) stream._handle?.setBlocking?.(true);
}
`;

class TooLarge extends Error {}

function forward(data) {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(2, data, offset, data.length - offset);
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
      Atomics.wait(sleepCell, 0, 0, 1); // a non-blocking pipe is full: wait a moment
    }
  }
}

// One of the program's output pipes: the bytes kept, and the line being forwarded.
class Output {
  constructor(name, cap, live, limit = null) {
    this.tag = live ? TAGS[name] : null;
    this.cap = cap;
    this.limit = limit; // judging: more than this many bytes is OLE (the program is killed)
    this.total = 0;
    this.kept = [];
    this.size = 0;
    this.truncated = false;
    this.line = Buffer.alloc(0);
  }

  take(data) {
    this.total += data.length;
    const room = this.cap - this.size;
    if (data.length > room) {
      this.truncated = true;
      data = data.subarray(0, Math.max(room, 0));
    }
    if (data.length === 0) return;
    this.kept.push(data);
    this.size += data.length;
    if (this.tag === null) return;
    let line = Buffer.concat([this.line, data]);
    let end;
    while ((end = line.indexOf(10)) >= 0) {
      forward(Buffer.concat([this.tag, line.subarray(0, end + 1)]));
      line = line.subarray(end + 1);
    }
    while (line.length >= LINE_PIECE) {
      forward(Buffer.concat([this.tag, line.subarray(0, LINE_PIECE), Buffer.from("\n")]));
      line = line.subarray(LINE_PIECE);
    }
    this.line = Buffer.from(line);
  }

  flush() {
    if (this.tag !== null && this.line.length > 0) {
      forward(Buffer.concat([this.tag, this.line, Buffer.from("\n")]));
      this.line = Buffer.alloc(0);
    }
  }

  text() {
    return Buffer.concat(this.kept).toString("utf8");
  }
}

function relative(name) {
  if (typeof name !== "string" || name === "" || name.startsWith("/") || name.includes("\\")) {
    throw new Error(`file name ${JSON.stringify(name)} must be a relative path`);
  }
  if (name.split("/").some((part) => ["", ".", ".."].includes(part)) || CONTROL.test(name)) {
    throw new Error(`file name ${JSON.stringify(name)} must be a plain relative path`);
  }
  return name;
}

function writeInputs(work, files, program, code) {
  const inputs = new Map();
  for (const [given, encoded] of Object.entries(files ?? {})) {
    const name = relative(given);
    if (name === program) {
      throw new Error(`${program} is the program itself: give the input file another name`);
    }
    const data = Buffer.from(encoded, "base64");
    const file = path.join(work, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, data);
    inputs.set(name, data);
  }
  const source = Buffer.from(code, "utf8");
  fs.writeFileSync(path.join(work, program), source);
  inputs.set(program, source);
  return inputs;
}

function environment(work) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("EXECUTOR_")) env[key] = value;
  }
  env.PWD = work;
  return env;
}

// The CPU seconds (user + system, all threads) a running process used so far, or null.
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 1).trim().split(/\s+/);
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / TICK : null;
  } catch {
    return null;
  }
}

// The peak resident set (bytes) of a running process so far (VmRSS where there is no VmHWM).
function peakRss(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "latin1");
    const match = /^VmHWM:\s+(\d+)/m.exec(status) ?? /^VmRSS:\s+(\d+)/m.exec(status);
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

function killGroup(pid) {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

// Run the program; what it wrote, how it ended, how long it took and what it used.
// `limits` (judging): cpu seconds (polled), wall seconds, memory bytes of peak RSS (polled),
// output bytes of stdout; the first passed is limit_hit (the program is killed then).
function run(args, work, task, preload, limits = {}) {
  const live = Boolean(task.forward);
  const outputs = {
    stdout: new Output("stdout", task.max_stdout, live, limits.output ?? null),
    stderr: new Output("stderr", task.max_stderr, live),
  };
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--require", preload, ...args], {
      cwd: work,
      env: environment(work),
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      detached: true, // its own process group, killed as a whole
    });
    let timedOut = false;
    let limitHit = null;
    let endedAt = null;
    let status = null;
    let signal = null;
    let settled = false;
    let timer = null;
    let wallTimer = null;
    let poller = null;
    let drain = null;
    let reported = "";
    const polled = { cpu: null, rss: null };
    const hit = (what) => {
      if (limitHit === null && endedAt === null && !timedOut) {
        limitHit = what;
        killGroup(child.pid);
      }
    };
    const poll = () => {
      if (endedAt !== null) return;
      const cpu = cpuSeconds(child.pid);
      const rss = peakRss(child.pid);
      if (cpu !== null) polled.cpu = cpu;
      if (rss !== null) polled.rss = Math.max(polled.rss ?? 0, rss);
      if (limits.cpu != null && cpu !== null && cpu > limits.cpu) hit("cpu");
      else if (limits.memory != null && rss !== null && rss > limits.memory) hit("memory");
    };
    const stop = () => {
      clearTimeout(timer);
      clearTimeout(wallTimer);
      clearInterval(poller);
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      stop();
      clearTimeout(drain);
      killGroup(child.pid);
      for (const pipe of [child.stdout, child.stderr, child.stdio[3]]) pipe.destroy();
      for (const output of Object.values(outputs)) output.flush();
      let own = null;
      for (const line of reported.split("\n").filter(Boolean)) {
        let said = null;
        try {
          said = JSON.parse(line);
        } catch {
          continue; // cut short by a kill (or it wrote on fd 3 itself)
        }
        if (said?.start !== true) {
          own = said; // its exit handler's: the final numbers
        } else {
          // As it started: what the kernel said then, a floor for the polled values.
          if (typeof said.cpu === "number") polled.cpu = Math.max(polled.cpu ?? 0, said.cpu);
          if (typeof said.rss === "number") polled.rss = Math.max(polled.rss ?? 0, said.rss);
        }
      }
      // Without an exit report (killed before it could say): the polled values stand.
      // It reported at its own exit: a poll that raced with that exit is judged by its own
      // final numbers (killed for a limit, it could not have reported).
      if (limitHit === "cpu" && typeof own?.cpu === "number" && own.cpu <= limits.cpu) {
        limitHit = null;
      } else if (limitHit === "memory" && typeof own?.rss === "number" && own.rss <= limits.memory) {
        limitHit = null;
      }
      const duration = ((endedAt ?? performance.now()) - started) / 1000;
      const cpu = typeof own?.cpu === "number" ? own.cpu : polled.cpu;
      const rss = typeof own?.rss === "number" ? Math.max(own.rss, polled.rss ?? 0) : polled.rss;
      resolve({
        stdout: outputs.stdout.text(),
        stderr: outputs.stderr.text(),
        stdout_truncated: outputs.stdout.truncated,
        stderr_truncated: outputs.stderr.truncated,
        exit_code: status,
        signal,
        timed_out: timedOut,
        limit_hit: limitHit,
        duration,
        usage: { cpu_time: cpu, peak_memory: rss, wall_time: duration },
      });
    };
    child.on("error", (err) => {
      if (!settled) {
        settled = true;
        stop();
        reject(err);
      }
    });
    child.stdout.on("data", (data) => {
      const out = outputs.stdout;
      out.take(data);
      if (out.limit !== null && out.total > out.limit) hit("output");
    });
    child.stderr.on("data", (data) => outputs.stderr.take(data));
    child.stdio[3].on("data", (data) => {
      if (reported.length < 4096) reported += data.toString("utf8");
    });
    child.stdio[3].on("error", () => {});
    child.stdin.on("error", () => {}); // the program closed its stdin: the rest is not wanted
    child.stdin.end(Buffer.from(task.stdin ?? "", "utf8"));
    if (task.timeout !== null && task.timeout !== undefined) {
      timer = setTimeout(() => {
        if (endedAt === null && limitHit === null) timedOut = true;
        killGroup(child.pid);
      }, task.timeout * 1000);
    }
    if (limits.wall != null) wallTimer = setTimeout(() => hit("wall"), limits.wall * 1000);
    poller = setInterval(poll, POLL_MS);
    child.on("exit", (code, sig) => {
      endedAt = performance.now();
      signal = sig === null ? null : (os.constants.signals[sig] ?? 0);
      status = code ?? 128 + (signal ?? 0);
      stop();
      killGroup(child.pid); // what the program left running ends with it
      drain = setTimeout(finish, DRAIN_MS); // an escaped process may hold the pipes
    });
    child.on("close", finish);
  });
}

// New or changed regular files under work as {relative path: base64}.
function collect(work, inputs, maxBytes, maxFiles) {
  const files = {};
  let count = 0;
  let used = 0;
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  const walk = (dir, prefix) => {
    const names = fs.readdirSync(dir, { encoding: "buffer" }).sort(Buffer.compare);
    for (const raw of names) {
      const name = raw.toString("utf8");
      const full = path.join(dir, name);
      const rel = prefix + name;
      const stat = fs.lstatSync(Buffer.concat([Buffer.from(`${dir}/`), raw]));
      if (stat.isDirectory()) {
        walk(full, `${rel}/`);
        continue;
      }
      if (!stat.isFile()) continue; // symlinks, FIFOs, sockets: regular files only
      if (!Buffer.from(name, "utf8").equals(raw)) {
        throw new Error(`a file name is not valid UTF-8: ${JSON.stringify(rel)}`);
      }
      if (CONTROL.test(rel)) {
        throw new Error(`a file name holds a control character: ${JSON.stringify(rel)}`);
      }
      const original = inputs.get(rel);
      const room = maxBytes - used - Buffer.byteLength(rel);
      const limit = Math.max(room, original === undefined ? 0 : original.length);
      const fd = fs.openSync(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      const chunks = [];
      let size = 0;
      try {
        if (!fs.fstatSync(fd).isFile()) continue;
        const buffer = Buffer.alloc(Math.min(limit + 1, 1 << 20));
        while (size <= limit) {
          const got = fs.readSync(fd, buffer, 0, Math.min(limit + 1 - size, buffer.length));
          if (got === 0) break;
          chunks.push(Buffer.from(buffer.subarray(0, got)));
          size += got;
        }
      } finally {
        fs.closeSync(fd);
      }
      const data = Buffer.concat(chunks);
      if (original !== undefined && data.equals(original)) continue; // an input, unchanged
      if (count >= maxFiles) throw new TooLarge(`more than ${maxFiles} files`);
      if (size > room) throw new TooLarge(`more than ${maxBytes} bytes`);
      used += Buffer.byteLength(rel) + size;
      count += 1;
      files[rel] = data.toString("base64");
    }
  };
  walk(work, "");
  return files;
}

function remove(dir) {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    // made unreadable by the program: open every directory up, then again
    const open = (at) => {
      try {
        fs.chmodSync(at, 0o700);
        for (const name of fs.readdirSync(at)) {
          const inner = path.join(at, name);
          if (fs.lstatSync(inner).isDirectory()) open(inner);
        }
      } catch {
        // best effort
      }
    };
    open(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function tokensEqual(actual, expected, tolerance) {
  const got = actual.split(/\s+/).filter(Boolean);
  const want = expected.split(/\s+/).filter(Boolean);
  if (got.length !== want.length) return false;
  return got.every((a, index) => {
    const b = want[index];
    if (a === b) return true;
    if (tolerance === null) return false;
    const x = Number(a);
    const y = Number(b);
    if (a.trim() === "" || b.trim() === "" || Number.isNaN(x) || Number.isNaN(y)) return false;
    return Math.abs(x - y) <= tolerance * Math.max(1, Math.abs(y));
  });
}

function lines(text) {
  const all = text.split("\n").map((line) => line.trimEnd());
  while (all.length > 0 && all[all.length - 1] === "") all.pop();
  return all;
}

function same(actual, expected, compare, tolerance) {
  if (compare === "exact") return actual === expected;
  if (compare === "lines") {
    const [a, b] = [lines(actual), lines(expected)];
    return a.length === b.length && a.every((line, index) => line === b[index]);
  }
  return tokensEqual(actual, expected, compare === "float" ? tolerance : null);
}

// The verdict of a run before its output is looked at (null: it ended well), and why.
function verdictOf(result, memoryLimit) {
  const peak = result.usage.peak_memory;
  switch (result.limit_hit) {
    case "cpu":
      return ["TLE", "CPU time limit exceeded (killed)"];
    case "wall":
      return ["TLE", "wall time limit (3x the CPU limit) exceeded: the program waited (killed)"];
    case "memory":
      return ["MLE", `peak memory over the limit of ${memoryLimit} bytes (killed)`];
    case "output":
      return ["OLE", "output limit exceeded (killed)"];
    default:
  }
  if (memoryLimit && peak !== null && peak > memoryLimit) {
    return ["MLE", `peak memory ${peak} bytes > limit ${memoryLimit}`];
  }
  if (/JavaScript heap out of memory/.test(result.stderr)) {
    return ["MLE", "JavaScript heap out of memory"];
  }
  if (result.signal !== null) {
    const name = Object.keys(os.constants.signals).find(
      (key) => os.constants.signals[key] === result.signal,
    );
    return ["RE", `killed by ${name ?? `signal ${result.signal}`}`];
  }
  if (result.exit_code !== 0) return ["RE", `exit code ${result.exit_code}`];
  return [null, ""];
}

function limitsOf(task, output) {
  const cpu = task.time_limit ?? null;
  return {
    cpu,
    wall: cpu === null ? null : 3 * cpu,
    memory: task.memory_limit ?? null,
    output,
  };
}

function copyTree(source, target) {
  fs.cpSync(source, target, { recursive: true, verbatimSymlinks: true });
}

// Write the checker (JavaScript) into base/checker, as the program is written into work/.
function prepareChecker(checker, base) {
  const program = ESM.test(checker.code) ? "main.mjs" : "main.cjs";
  const dir = path.join(base, "checker");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, program), checker.code);
  return { dir, program };
}

// Run the checker on one test: [passed, message]; passed is null when time ran out.
async function check(checker, test, actual, base, task, deadline, preload) {
  const where = fs.mkdtempSync(path.join(base, "check-"));
  try {
    const work = path.join(where, "work");
    copyTree(checker.dir, work);
    const files = [
      ["input.txt", test.stdin ?? ""],
      ["output.txt", actual],
      ["answer.txt", test.expected ?? ""],
    ].map(([name, text]) => {
      const file = path.join(where, name);
      fs.writeFileSync(file, text);
      return file;
    });
    const timeout = deadline === null ? null : Math.max(deadline - performance.now(), 0) / 1000;
    const sub = { ...task, stdin: "", forward: false, timeout, max_stdout: 4096, max_stderr: 4096 };
    const result = await run([checker.program, ...files], work, sub, preload);
    const message = (result.stdout + result.stderr).trim().slice(0, 1000);
    if (result.timed_out) return [null, "the checker ran out of time"];
    if (result.exit_code !== 0) {
      return [false, message || `the checker said WA (exit code ${result.exit_code})`];
    }
    return [true, message];
  } finally {
    remove(where);
  }
}

async function judge(task, base, work, program, preload) {
  const started = performance.now();
  const deadline = task.timeout == null ? null : started + task.timeout * 1000;
  const limits = limitsOf(task, task.max_stdout);
  const keep = {
    ...task,
    max_stdout: task.keep_stdout || task.max_stdout,
    max_stderr: task.keep_stderr || task.max_stderr,
    forward: false,
  };
  const checker = task.checker ? prepareChecker(task.checker, base) : null;
  const compare = task.compare || "tokens";
  const tolerance = compare === "float" ? Number(task.float_tolerance || 0) : null;
  const results = [];
  let timedOut = false;
  for (const [index, test] of (task.tests ?? []).entries()) {
    if (deadline !== null && performance.now() >= deadline) {
      timedOut = true;
      break;
    }
    // Each test in a fresh copy of the program's directory, removed after it.
    const where = path.join(base, `test-${index}`);
    copyTree(work, where);
    let result;
    try {
      const timeout = deadline === null ? null : Math.max(deadline - performance.now(), 0) / 1000;
      const sub = { ...keep, stdin: test.stdin ?? "", timeout };
      result = await run([program], where, sub, preload, limits);
    } finally {
      remove(where);
    }
    if (result.timed_out) {
      timedOut = true;
      break;
    }
    let [verdict, message] = verdictOf(result, task.memory_limit);
    const expected = test.expected ?? null;
    if (verdict === null && checker !== null) {
      // The checker reads the whole output: OLE already caps what it could be.
      const [passed, said] = await check(checker, test, result.stdout, base, task, deadline, preload);
      if (passed === null) {
        timedOut = true;
        break;
      }
      [verdict, message] = [passed ? "AC" : "WA", said];
    } else if (verdict === null && expected !== null) {
      if (result.stdout_truncated) {
        [verdict, message] = ["WA", "output longer than what is kept for comparison"];
      } else if (same(result.stdout, expected, compare, tolerance)) {
        verdict = "AC";
      } else {
        [verdict, message] = ["WA", `output differs from the expected (${compare})`];
      }
    } else if (verdict === null) {
      verdict = "AC";
    }
    results.push({
      verdict,
      message,
      stdout: result.stdout,
      stderr: result.stderr,
      exit_code: result.exit_code,
      usage: result.usage,
      stdout_truncated: result.stdout_truncated,
      stderr_truncated: result.stderr_truncated,
    });
    if (verdict !== "AC" && task.stop_on_first_failure) break;
  }
  const failed = results.filter((r) => r.verdict !== "AC");
  const wall = (performance.now() - started) / 1000;
  return {
    stdout: "",
    stderr: "",
    stdout_truncated: false,
    stderr_truncated: false,
    exit_code: 0,
    timed_out: timedOut,
    duration: wall,
    usage: {
      cpu_time: results.reduce((sum, r) => sum + (r.usage.cpu_time ?? 0), 0),
      peak_memory: results.reduce((most, r) => Math.max(most, r.usage.peak_memory ?? 0), 0),
      wall_time: wall,
    },
    compile: null,
    verdict: failed.length > 0 ? failed[0].verdict : "AC",
    tests: results,
    files: {},
    files_error: null,
  };
}

export async function executeFunction(task) {
  if (task.language !== "node") {
    throw new Error(`this image runs node programs, not ${JSON.stringify(task.language)}`);
  }
  if (task.checker && task.checker.language !== "node") {
    const language = JSON.stringify(task.checker.language);
    throw new Error(`this image runs node checkers, not ${language}`);
  }
  const program = ESM.test(task.code) ? "main.mjs" : "main.cjs";
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "executor-code-"));
  try {
    const preload = path.join(base, "usage.cjs");
    fs.writeFileSync(preload, USAGE_PRELOAD);
    const work = path.join(base, "work");
    fs.mkdirSync(work);
    const inputs = writeInputs(work, task.files, program, task.code);
    if (task.tests !== null && task.tests !== undefined) {
      return await judge(task, base, work, program, preload);
    }
    const limited = task.time_limit != null || task.memory_limit != null;
    const argv = (task.argv ?? []).map(String);
    const result = await run([program, ...argv], work, task, preload, limitsOf(task, null));
    result.compile = null;
    result.verdict = null;
    if (limited && !result.timed_out) result.verdict = verdictOf(result, task.memory_limit)[0] ?? "AC";
    result.tests = null;
    delete result.signal;
    delete result.limit_hit;
    result.files = {};
    result.files_error = null;
    if (!result.timed_out) {
      try {
        result.files = collect(work, inputs, task.max_collect_bytes, task.max_collect_files);
      } catch (err) {
        const code = err instanceof TooLarge ? "COLLECT_TOO_LARGE" : "COLLECT_FAILED";
        result.files = {};
        result.files_error = { code, message: err.message };
      }
    }
    return result;
  } finally {
    remove(base);
  }
}
