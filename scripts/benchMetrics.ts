/**
 * `npm run bench -- metrics`:
 *  - parsing a full /metrics page of a real member (goal < 5 ms), median of many parses, against
 *    the size of the page;
 *  - scraping 5 members of a real mutual-TLS etcd on loopback, all at once (goal < 200 ms per
 *    round), and curl fetching the same 5 pages one after another with the same certificates;
 *  - memory over an hour of scraping: 360 rounds (10 s apart on the window's clock) of 5 members
 *    into a 15-minute window, heap after garbage collection every 60 rounds (bounded = flat).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parsePrometheus } from '../src/core/etcd/prometheus';
import { clusterMetrics, scrapeInto } from '../src/core/metrics/scrape';
import { metricsTargets, scrapeMetrics } from '../src/core/etcd/scrape';
import { MetricsWindow, pointFrom } from '../src/core/metrics/window';
import { admin, etcdWithOurCerts, tlsFlags } from './harness/etcdTls';
import { makeTempDir, removeTempDir } from './harness/processes';
import { median, ms } from './benchStats';

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export async function benchMetrics(): Promise<void> {
  const dir = await makeTempDir('k3s-etcd-bench-metrics-');
  const pki = join(dir, 'pki');
  const { etcd, cluster } = await etcdWithOurCerts(pki, 5, { extra: { samePorts: true } });
  try {
    const tls = admin(pki);
    const targets = metricsTargets(cluster);
    // Some traffic first, so the pages carry the gRPC and histogram series of a working member.
    const window = new MetricsWindow();
    await scrapeInto(window, targets, { tls });

    const page = await scrapeMetrics(targets[0]!.url, { tls });
    const parses: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      parsePrometheus(page.text);
      parses.push(performance.now() - t);
    }
    const parsed = parsePrometheus(page.text);
    console.log(
      `parse one /metrics page (${(page.bytes / 1024).toFixed(0)} KB, ${parsed.samples} samples): median ${median(parses).toFixed(2)} ms, min ${Math.min(...parses).toFixed(2)} ms (goal < 5 ms)`,
    );

    const rounds: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const r = await scrapeInto(window, targets, { tls });
      if (r.errors.size) throw new Error([...r.errors.values()].join('; '));
      rounds.push(performance.now() - t);
    }
    const curls: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      for (const target of targets)
        execFileSync('curl', [
          '-sS',
          '--fail',
          '--noproxy',
          '*',
          ...tlsFlags(tls),
          '-o',
          '/dev/null',
          target.url,
        ]);
      curls.push(performance.now() - t);
    }
    console.log(
      `scrape + parse 5 members at once: median ${ms(median(rounds))} per round, max ${ms(Math.max(...rounds))} (goal < 200 ms); curl, the same 5 pages one by one: median ${ms(median(curls))} (ratio ${(median(rounds) / median(curls)).toFixed(2)}×)`,
    );

    // An hour of scraping every 10 s, 5 members, into the default 15-minute window.
    const texts = await Promise.all(targets.map((t) => scrapeMetrics(t.url, { tls })));
    const pages = texts.map((t) => parsePrometheus(t.text));
    const hour = new MetricsWindow({ windowMs: 15 * 60_000 });
    gc();
    const base = process.memoryUsage().heapUsed;
    const heaps: string[] = [];
    let at = Date.now();
    for (let round = 1; round <= 360; round++) {
      at += 10_000;
      pages.forEach((p, i) => hour.add(targets[i]!.member, pointFrom(p, at)));
      clusterMetrics(cluster.name, targets, hour, { at, errors: new Map() });
      if (round % 60 === 0) {
        gc();
        heaps.push(
          `${round} scrapes: ${hour.size()} points, heap +${mb(process.memoryUsage().heapUsed - base)}`,
        );
      }
    }
    console.log(
      `memory over an hour of scraping (5 members, 15 min window):\n  ${heaps.join('\n  ')}`,
    );
  } finally {
    await etcd.stop();
    await removeTempDir(dir);
  }
}
