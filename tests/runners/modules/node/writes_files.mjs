import fs from "node:fs";
import path from "node:path";

// Write input.write ({relative path: text}) under input.dir; input.symlink names a symlink to
// make there. Returns the directory's entries before writing.
export function executeFunction(input) {
  const dir = input.dir;
  const found = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : null;
  for (const [name, text] of Object.entries(input.write ?? {})) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
  if (input.symlink) fs.symlinkSync("/etc/hostname", path.join(dir, input.symlink));
  return { found };
}
