/**
 * A state.db of more than a gigabyte, as a cluster whose kine compaction fell behind leaves it
 * (mostly history, under 1% live), migrated by the CLI under `node --max-old-space-size=256`
 * into a real mutual-TLS etcd: it finishes, verified, and the process's peak resident memory
 * (VmHWM from /proc) stays under 400 MB. Reading the whole file into memory, as the migration
 * did before, cannot pass this. The file is removed afterwards, whatever happens.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statfsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { adminTls } from '../../src/core/etcd/connection';
import { bigKineDb } from '../../scripts/harness/kineFixture';
import { etcdctl, type EtcdctlTls } from '../../scripts/harness/etcd';
import { etcdWithOurCerts, harnessInventory, testScope } from './harness/tlsCluster';

const GB = 1024 ** 3;
const ROOT = resolve(__dirname, '..', '..');

/** VmHWM (peak resident set) of a live process, in bytes; 0 once it is gone. */
function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

describe('a gigabyte state.db, migrated in bounded memory', () => {
  const { tempDir, track } = testScope('k3s-etcd-migrate-gb-');

  it('the CLI migrates a 1 GB state.db (under 1% live) with a 256 MB heap, peak RSS < 400 MB', async () => {
    const dir = await tempDir();
    const free = statfsSync(dir);
    assert.ok(free.bavail * free.bsize > 3 * GB, 'needs 3 GB free in the temporary directory');
    const { cluster, etcd } = await etcdWithOurCerts(join(dir, 'pki'), 1, { track });
    await writeFile(join(dir, 'k3s-etcd.yaml'), harnessInventory(etcd, { pki: 'pki' }));
    const db = join(dir, 'state.db');
    const t0 = performance.now();
    const fx = bigKineDb(db, { bytes: 1.05 * GB });
    const buildMs = performance.now() - t0;
    assert.ok(statSync(db).size >= GB, `state.db is ${statSync(db).size} bytes`);
    assert.ok(fx.live / fx.rows < 0.01, `${fx.live} live of ${fx.rows} rows`);

    const child = spawn(
      process.execPath,
      [
        '--max-old-space-size=256',
        '--import',
        'tsx',
        join(ROOT, 'src', 'cli', 'main.ts'),
        '--inventory',
        join(dir, 'k3s-etcd.yaml'),
        '--json',
        'migrate',
        'sqlite-to-etcd',
        '--source',
        db,
        '--yes',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, peakRss(child.pid!))), 20);
    const deadline = setTimeout(() => child.kill('SIGKILL'), 150_000);
    const t1 = performance.now();
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    const runMs = performance.now() - t1;
    clearInterval(sampler);
    clearTimeout(deadline);
    assert.equal(code, 0, `${out}\n${err}`);
    const res = JSON.parse(out) as {
      write: { written: number };
      verify: { ok: boolean; foundKeys: number };
    };
    assert.equal(res.verify.ok, true);
    assert.equal(res.write.written, fx.live);
    assert.doesNotMatch(err, /Reading state\.db|Writing:/, 'no progress line in a pipe');
    const count = await etcdctl(
      etcd,
      ['get', '--prefix', '/registry/', '--keys-only', '-w', 'json'],
      {
        tls: adminTls(cluster) as EtcdctlTls,
      },
    );
    assert.equal((JSON.parse(count.stdout) as { count: number }).count, fx.live);
    console.log(
      `# 1 GB state.db (${fx.rows} rows, ${fx.live} live): built in ${Math.round(buildMs)} ms, migrated in ${Math.round(runMs)} ms, peak RSS ${Math.round(peak / 1024 ** 2)} MB`,
    );
    assert.ok(peak > 0 && peak < 400 * 1024 ** 2, `peak RSS ${Math.round(peak / 1024 ** 2)} MB`);
  });
});
