/**
 * A client that writes to every endpoint of an etcd cluster the whole time, as K3s's datastore
 * client does: each write goes to the next endpoint in turn and, when that one fails, to the
 * others (a client's failover; an endpoint that failed within the last second is tried last);
 * a write counts as failed only when no endpoint took it. Every
 * retry is recorded with its reason ("leader changed", the endpoint down, a timeout, a TLS
 * refusal), and every successful write with its time, for rates before and during a change.
 */
import { createEndpointClient, type EtcdTls } from '../../src/core/etcd/client';
import { reasonOf } from './writeReasons';

export { reasonOf, ROLLING_RETRIES, TLS_REFUSED } from './writeReasons';

export interface WriterStats {
  ok: number;
  failed: number;
  /** Attempts that failed and were retried on another endpoint, by reason. */
  retried: Record<string, number>;
  /** The first few failures (no endpoint took the write), in words. */
  failures: string[];
  /** performance.now() of every successful write. */
  okAt: number[];
  /** The longest time between two successful writes, in ms. */
  maxGapMs: number;
}

export interface Writer {
  readonly stats: WriterStats;
  /** Successful writes per second between two performance.now() times. */
  rate(from: number, to: number): number;
  stop(): Promise<WriterStats>;
}

/** Starts `workers` writers (each one write in flight) over `endpoints`. */
export async function startWriter(opts: {
  endpoints: string[];
  tls: EtcdTls;
  prefix?: string;
  workers?: number;
  timeoutMs?: number;
}): Promise<Writer> {
  const clients = await Promise.all(
    opts.endpoints.map((ep) =>
      createEndpointClient(ep, { tls: opts.tls, timeoutMs: opts.timeoutMs ?? 2000 }),
    ),
  );
  const stats: WriterStats = { ok: 0, failed: 0, retried: {}, failures: [], okAt: [], maxGapMs: 0 };
  const prefix = opts.prefix ?? '/k3s-etcd-writer/';
  let stopped = false;
  let seq = 0;
  let last = performance.now();
  // Like etcd's own client balancer, an endpoint that just failed is tried last for a second.
  const failedAt = clients.map(() => -Infinity);
  const one = async (): Promise<void> => {
    const n = seq++;
    const reasons: string[] = [];
    const now0 = performance.now();
    const order = clients
      .map((_, i) => (n + i) % clients.length)
      .sort((a, b) => Number(now0 - failedAt[a]! < 1000) - Number(now0 - failedAt[b]! < 1000));
    for (const i of order) {
      const c = clients[i];
      try {
        await c?.put(`${prefix}${n % 1000}`).value(String(n));
        const now = performance.now();
        stats.maxGapMs = Math.max(stats.maxGapMs, now - last);
        last = now;
        stats.ok++;
        stats.okAt.push(now);
        for (const r of reasons) stats.retried[r] = (stats.retried[r] ?? 0) + 1;
        return;
      } catch (err) {
        failedAt[i] = performance.now();
        reasons.push(reasonOf(err));
      }
    }
    stats.failed++;
    if (stats.failures.length < 10) stats.failures.push(`write ${n}: ${reasons.join(', ')}`);
  };
  const loops = Array.from({ length: opts.workers ?? 2 }, async () => {
    while (!stopped) await one();
  });
  return {
    stats,
    rate(from, to) {
      const n = stats.okAt.filter((t) => t >= from && t < to).length;
      return n / Math.max((to - from) / 1000, 0.001);
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
      for (const c of clients) c.close();
      return stats;
    },
  };
}
