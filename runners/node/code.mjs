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
// files, files_error}; exit_code is 128 + N for a program killed by signal N. No dependencies.

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
  constructor(name, cap, live) {
    this.tag = live ? TAGS[name] : null;
    this.cap = cap;
    this.kept = [];
    this.size = 0;
    this.truncated = false;
    this.line = Buffer.alloc(0);
  }

  take(data) {
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

function killGroup(pid) {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

function run(args, work, task) {
  const live = Boolean(task.forward);
  const outputs = {
    stdout: new Output("stdout", task.max_stdout, live),
    stderr: new Output("stderr", task.max_stderr, live),
  };
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: work,
      env: environment(work),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // its own process group, killed as a whole
    });
    let timedOut = false;
    let endedAt = null;
    let status = null;
    let settled = false;
    let timer = null;
    let drain = null;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drain);
      killGroup(child.pid);
      child.stdout.destroy();
      child.stderr.destroy();
      for (const output of Object.values(outputs)) output.flush();
      resolve({
        stdout: outputs.stdout.text(),
        stderr: outputs.stderr.text(),
        stdout_truncated: outputs.stdout.truncated,
        stderr_truncated: outputs.stderr.truncated,
        exit_code: status,
        timed_out: timedOut,
        duration: ((endedAt ?? performance.now()) - started) / 1000,
      });
    };
    child.on("error", (err) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    child.stdout.on("data", (data) => outputs.stdout.take(data));
    child.stderr.on("data", (data) => outputs.stderr.take(data));
    child.stdin.on("error", () => {}); // the program closed its stdin: the rest is not wanted
    child.stdin.end(Buffer.from(task.stdin ?? "", "utf8"));
    if (task.timeout !== null && task.timeout !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid);
      }, task.timeout * 1000);
    }
    child.on("exit", (code, signal) => {
      endedAt = performance.now();
      status = code ?? 128 + (os.constants.signals[signal] ?? 0);
      clearTimeout(timer);
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

export async function executeFunction(task) {
  if (task.language !== "node") {
    throw new Error(`this image runs node programs, not ${JSON.stringify(task.language)}`);
  }
  const program = ESM.test(task.code) ? "main.mjs" : "main.cjs";
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "executor-code-"));
  try {
    const work = path.join(base, "work");
    fs.mkdirSync(work);
    const inputs = writeInputs(work, task.files, program, task.code);
    const argv = (task.argv ?? []).map(String);
    const result = await run([program, ...argv], work, task);
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
