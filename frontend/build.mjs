// Builds the canvas island into static/flows/editor/ under fixed names (editor.js, editor.css),
// minified and without source maps, so that the committed bundle is byte-identical on every
// rebuild from the same package-lock.json; and LICENSES.txt beside it, with the licence of every
// package the bundle holds. `node build.mjs --watch` rebuilds on change (without the licences).
import * as esbuild from "esbuild";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "static", "flows", "editor");
// Packages whose published file has another package built into it.
const EMBEDDED = { "@dagrejs/dagre": ["@dagrejs/graphlib"] };

const options = {
  entryPoints: { editor: path.join(here, "src", "main.jsx") },
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  // Licences are gathered in LICENSES.txt beside the bundle instead.
  legalComments: "none",
  logLevel: "info",
};

function bundledPackages(metafile) {
  const found = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (match) {
      found.add(match[1]);
      for (const inner of EMBEDDED[match[1]] || []) found.add(inner);
    }
  }
  return [...found].sort();
}

function licences(packages) {
  const parts = [
    "Libraries bundled in editor.js and editor.css (built from frontend/ by `make frontend`).",
    "Each is used under the licence below.",
  ];
  for (const name of packages) {
    const folder = path.join(here, "node_modules", name);
    const about = JSON.parse(readFileSync(path.join(folder, "package.json"), "utf8"));
    const file = readdirSync(folder).find((f) => /^licen[cs]e/i.test(f));
    const text = file ? readFileSync(path.join(folder, file), "utf8").trim() : `License: ${about.license}`;
    parts.push(`${"=".repeat(78)}\n${name} ${about.version} (${about.license})\n${"=".repeat(78)}\n${text}`);
  }
  return `${parts.join("\n\n")}\n`;
}

if (process.argv.includes("--watch")) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  const result = await esbuild.build({ ...options, metafile: true });
  writeFileSync(path.join(outdir, "LICENSES.txt"), licences(bundledPackages(result.metafile)));
}
