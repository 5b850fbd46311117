// Builds dist/ once before the tests, so end-to-end tests run the real compiled `sft-server`
// and `sft-client` as separate processes, as users run them. Type errors are reported by
// `npm run typecheck` (and CI's lint step), not here: tsc still emits, which keeps one broken
// file from hiding every other test result.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

module.exports = function globalSetup() {
  const root = path.resolve(__dirname, '..');
  const tsc = require.resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    process.stderr.write(
      `\n[global-setup] tsc reported errors (dist was still emitted):\n${result.stdout}\n`,
    );
  }
};
