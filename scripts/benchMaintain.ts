/**
 * `npm run bench -- maintain`: defragmentation time per member on a real 3-member mutual-TLS
 * etcd, the rolling defragmentation (src/core/rolling/defrag.ts: one member at a time, followers
 * first, the leader last after a hand-over, each caught up before the next) against
 * `etcdctl defrag` on each endpoint, on the same data in the same run. Each round writes the same
 * churn (one key rewritten until the history holds BENCH_MAINTAIN_MIB, default 128 MiB) and
 * compacts it, so every member's file is large and mostly free; the rounds alternate which of the
 * two goes first; BENCH_MAINTAIN_LIVE_MIB (default 64) of distinct keys stay, which each
 * defragmentation copies. Per member: the median time of each, and the file before and after. The
 * rolling run's total also holds its health checks between members and the hand-over.
 */
import { join } from 'node:path';
import { createEndpointClient } from '../src/core/etcd/client';
import { humanBytes } from '../src/shared/etcdTypes';
import { rollingDefrag } from '../src/core/rolling/defrag';
import { liveCluster } from '../src/core/rolling/live';
import { median, ms } from './benchStats';
import { etcdctl } from './harness/etcd';
import { admin, etcdWithOurCerts } from './harness/etcdTls';
import { makeTempDir, removeTempDir } from './harness/processes';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const MIB = Number(process.env['BENCH_MAINTAIN_MIB'] ?? 128);
/** Data that stays (distinct keys): what a defragmentation has to copy. */
const LIVE_MIB = Number(process.env['BENCH_MAINTAIN_LIVE_MIB'] ?? 64);

export async function benchMaintain(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-maintain-');
  const pki = join(dir, 'pki');
  const { etcd } = await etcdWithOurCerts(pki, 3, { extra: { samePorts: true } });
  const tls = admin(pki);
  const client = await createEndpointClient(etcd.endpoints[0]!, { tls, timeoutMs: 60_000 });
  const names = etcd.members.map((m) => m.name);
  const ours: Record<string, number[]> = {};
  const theirs: Record<string, number[]> = {};
  const sizes: Record<string, { before: number; after: number }> = {};
  const totals: number[] = [];
  const statusOf = async (e: string) => {
    const c = await createEndpointClient(e, { tls, timeoutMs: 10_000 });
    try {
      return Number((await c.maintenance.status()).dbSize);
    } finally {
      c.close();
    }
  };
  const churn = async () => {
    const value = 'v'.repeat(512 * 1024);
    for (let i = 0; i < MIB * 2; i++)
      await client.put('/bench/maintain/churn').value(`${i}${value}`);
    const rev = (await client.maintenance.status()).header.revision;
    await client.kv.compact({ revision: rev, physical: true });
  };
  const viaRolling = async () => {
    const t0 = performance.now();
    const r = await rollingDefrag({
      live: liveCluster({ endpoints: etcd.endpoints, tls }, 2000, true),
      tls,
      members: names,
    });
    totals.push(performance.now() - t0);
    if (r.stopped || r.steps.length !== 3) throw new Error(`rolling run: ${r.stopped ?? 'short'}`);
    for (const s of r.steps) {
      (ours[s.member] ??= []).push(s.durationMs);
      sizes[s.member] = { before: s.beforeBytes ?? 0, after: s.afterBytes ?? 0 };
    }
  };
  const viaEtcdctl = async () => {
    for (const [i, e] of etcd.endpoints.entries()) {
      const t0 = performance.now();
      const r = await etcdctl(etcd, ['defrag'], { tls, endpoints: [e], timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`etcdctl defrag ${e}: ${r.stderr}`);
      (theirs[names[i]!] ??= []).push(performance.now() - t0);
    }
  };
  try {
    const live = 'l'.repeat(256 * 1024);
    for (let i = 0; i < LIVE_MIB * 4; i++)
      await client.put(`/bench/maintain/live/${i}`).value(live);
    console.log(
      `Defragmentation of 3 members (mutual TLS), ${LIVE_MIB} MiB of live keys and ${MIB} MiB of compacted churn each round, ${ROUNDS} rounds:`,
    );
    for (let round = 0; round < ROUNDS; round++) {
      const pair = round % 2 === 0 ? [viaRolling, viaEtcdctl] : [viaEtcdctl, viaRolling];
      for (const run of pair) {
        await churn();
        const full = await Promise.all(etcd.endpoints.map(statusOf));
        if (Math.min(...full) < MIB * 1024 * 1024 * 0.5)
          throw new Error(`the files are smaller than the churn: ${full.join(', ')}`);
        await run();
      }
    }
    const w = Math.max(...names.map((n) => n.length));
    for (const n of names) {
      const s = sizes[n]!;
      console.log(
        `  ${n.padEnd(w)}  rolling ${ms(median(ours[n] ?? []))}  etcdctl defrag ${ms(median(theirs[n] ?? []))}  (file ${humanBytes(s.before)} → ${humanBytes(s.after)})`,
      );
    }
    console.log(
      `  rolling run in all (3 members, health checks between them, hand-over): ${ms(median(totals))}`,
    );
  } finally {
    client.close();
    await etcd.stop();
    await removeTempDir(dir);
  }
}
