#!/usr/bin/env node
// Runs test tiers with node's test runner: `node scripts/run-tests.mjs [unit|integration|editor|package|all]...`
// A tier with no test files fails (nothing is skipped silently). Ends with node's summary and a
// plain `N passed, N failed` line.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const TIERS = ['unit', 'integration', 'system', 'editor', 'package'];
const asked = process.argv.slice(2);
const tiers = asked.length === 0 || asked.includes('all') ? TIERS : asked;

function testFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const files = [];
for (const tier of tiers) {
  if (!TIERS.includes(tier)) {
    console.error(`unknown tier "${tier}" (tiers: ${TIERS.join(', ')}, all)`);
    process.exit(2);
  }
  const found = testFiles(join(root, 'test', tier));
  if (found.length === 0) {
    console.error(`tier "${tier}" has no test files: failing rather than skipping`);
    process.exit(1);
  }
  files.push(...found);
}

mkdirSync(join(root, 'test-results'), { recursive: true });
const tap = join(root, 'test-results', `tap-${tiers.join('-')}.txt`);
const args = [
  '--import',
  'tsx',
  '--test',
  '--test-concurrency=1',
  '--test-timeout=900000',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  ...files.map((f) => relative(root, f)),
];
console.log(`tiers: ${tiers.join(', ')} (${files.length} files)`);
// What the tests' processes cache (the CLI's code cache, a browser's) goes into a folder of this
// run, removed after it, never into the user's ~/.cache.
const cacheHome = mkdtempSync(join(tmpdir(), 'k3s-etcd-tests-cache-'));
const child = spawn(process.execPath, args, {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, XDG_CACHE_HOME: cacheHome },
});
const code = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
rmSync(cacheHome, { recursive: true, force: true });

const summary = readFileSync(tap, 'utf8');
const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(summary)?.[1] ?? 0);
const passed = count('pass');
const failed = count('fail') + count('cancelled');
console.log(`${passed} passed, ${failed} failed`);
process.exit(code !== 0 || failed > 0 || passed === 0 ? 1 : 0);
