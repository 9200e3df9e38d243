// A warm Node process rendering MJML with the reference `mjml` package, for bench/compose.py.
//
// Reads one JSON request per line on stdin: {"mjml": "...", "runs": 200, "warmup": 100}.
// Renders it `warmup` times untimed, then `runs` times, timing each render inside Node
// (process.hrtime), and answers one JSON line: {"ms": [...], "bytes": N, "errors": N,
// "version": "4.x.y"}.  Loaded from bench/node/ (npm install --prefix bench/node mjml@4).
"use strict";

const path = require("path");
const readline = require("readline");

const modules = path.join(__dirname, "node", "node_modules");
const mjml2html = require(path.join(modules, "mjml"));
const version = require(path.join(modules, "mjml", "package.json")).version;

// The same choices as our composer: no minifying, no comments, no web fonts.
const OPTIONS = { validationLevel: "soft", minify: false, keepComments: false, fonts: {} };

function render(source) {
  return mjml2html(source, OPTIONS);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  for (let i = 0; i < (request.warmup || 0); i++) render(request.mjml);
  const ms = [];
  let result = null;
  for (let i = 0; i < request.runs; i++) {
    const start = process.hrtime.bigint();
    result = render(request.mjml);
    ms.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  process.stdout.write(
    JSON.stringify({
      ms,
      bytes: result ? Buffer.byteLength(result.html, "utf8") : 0,
      errors: result ? result.errors.length : 0,
      version,
    }) + "\n"
  );
});
