#!/usr/bin/env node
/**
 * `npm run lab`'s entry. Plain JavaScript with no dependencies, so it runs on a fresh clone:
 * it first asks scripts/lab/preflight.mjs whether this machine can run the lab at all (Linux,
 * root, systemd-nspawn or apt-get to install it) and explains why not before anything is
 * installed; then `npm ci` when node_modules is missing; then scripts/lab.ts with the same
 * arguments (through tsx), whose exit code it returns.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labPreflight, machineFacts, refusalText } from './preflight.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = process.argv.slice(2);

if (!args.includes('--help') && !args.includes('-h')) {
  const facts = machineFacts();
  // --no-build installs nothing, so systemd-nspawn must already be there.
  if (args.includes('--no-build')) facts.canInstallNspawn = false;
  const reasons = labPreflight(facts);
  if (reasons.length > 0) {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    process.stderr.write(refusalText(reasons, { vsix: `k3s-etcd-${version}.vsix` }));
    process.exit(2);
  }
}

if (!existsSync(join(root, 'node_modules', 'tsx'))) {
  console.log('[lab] node_modules is missing: npm ci');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// Ctrl+C reaches scripts/lab.ts too (same process group): it decides what to stop; we wait for it.
const child = spawn(
  process.execPath,
  ['--import', 'tsx', join(root, 'scripts', 'lab.ts'), ...args],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
