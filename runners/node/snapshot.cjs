"use strict";
// The start-up snapshot of the Node runner's fork-mode spares (docs/RUNNERS.md, "Fork mode").
//
// Built once with the image: `node --snapshot-blob runner.blob --build-snapshot snapshot.cjs`
// (Node >= 18.20), when the image's node has no built-in start-up snapshot (Dockerfile). A spare then starts as `node --snapshot-blob runner.blob runner.mjs`: Node
// deserializes its bootstrapped heap instead of running its own bootstrap again, and the
// function below imports the runner (argv[1]), which loads the user module as always. Node
// builds without a built-in snapshot (Debian's) spend most of a start in that bootstrap.
//
// A snapshot's entry must be CommonJS, and in Node 18 a function deserialized from one cannot
// call import() ("Invalid host defined options"); a CommonJS module compiled after the start
// can. So at run time this same file, required again, exports the import() it needs.
const v8 = require("node:v8");

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  // What every start would load otherwise: the runner's `import fs from "node:fs"` reads all of
  // fs's lazy getters (its promises, streams, watchers, ...), and the import uses module and url.
  const fs = require("node:fs");
  for (const key of Object.keys(fs)) void fs[key];
  require("node:module");
  require("node:url");
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    if (process.env.EXECUTOR_NODE_SNAPSHOT_CHECK === "1") return; // run.sh: does the blob load?
    delete process.env.EXECUTOR_NODE_SNAPSHOT;
    // Child processes and workers inherit execArgv: not the blob, which starts only a runner.
    const at = process.execArgv.indexOf("--snapshot-blob");
    if (at >= 0) process.execArgv.splice(at, 2);
    const { createRequire } = require("node:module");
    const { pathToFileURL } = require("node:url");
    const load = createRequire(__filename)(__filename);
    load(pathToFileURL(process.argv[1]).href).catch((err) => {
      require("node:fs").writeSync(2, `executor runner: cannot start: ${err?.stack ?? err}\n`);
      process.exit(70);
    });
  });
} else {
  module.exports = (url) => import(url);
}
