// The executor orval generator: an OpenAPI document in, the generated client files out.
//
// Input:  {"spec": {...OpenAPI object...} | "JSON or YAML text",
//          "client": "fetch" (default) | "axios" | "react-query" | ... (any orval client),
//          "mode": "single" (default) | "split" | "tags" | "tags-split",
//          "override": {...orval output.override...}}   (optional)
// Output: {"relative/path.ts": "file content", ...}
//
// Everything is written under a fresh directory in /tmp and removed afterwards, so the image
// works with a read-only root filesystem and no network. orval is loaded at start-up (before
// the runner reads stdin), so a pre-started container answers without paying for the import.

import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const ORVAL_HOME = process.env.ORVAL_HOME ?? "/opt/orval";
const require = createRequire(path.join(ORVAL_HOME, "package.json"));
const orval = await import(pathToFileURL(require.resolve("orval")).href);
const generate = orval.generate ?? orval.default?.generate;

function listFiles(root, dir = root, out = {}) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) listFiles(root, full, out);
    else if (entry.isFile()) out[path.relative(root, full)] = fs.readFileSync(full, "utf8");
  }
  return out;
}

export async function executeFunction(input) {
  if (input === null || typeof input !== "object" || input.spec === undefined) {
    throw new TypeError('input must be an object with "spec" (an OpenAPI document)');
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "orval-"));
  try {
    const isText = typeof input.spec === "string";
    const specPath = path.join(work, isText ? "openapi.yaml" : "openapi.json");
    fs.writeFileSync(specPath, isText ? input.spec : JSON.stringify(input.spec));
    const outDir = path.join(work, "out");
    const output = {
      target: path.join(outDir, "api.ts"),
      client: input.client ?? "fetch",
      mode: input.mode ?? "single",
    };
    if (input.override !== undefined) output.override = input.override;
    await generate({ input: { target: specPath }, output }, work);
    return listFiles(outDir);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
