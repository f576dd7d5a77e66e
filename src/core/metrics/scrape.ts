/**
 * Turning a round of scrapes of etcd members' `/metrics` (read by etcd/scrape.ts with the same
 * mutual-TLS client files as everything else) into the per-member and cluster judgement.
 */
import type { EtcdTls } from '../etcd/client';
import { classifyEtcdError } from '../etcd/problems';
import { DEFAULT_POLICY, judgeWindow, levelOf, type JudgePolicy } from './judge';
import { parsePrometheus } from '../etcd/prometheus';
import { worst, type ClusterMetrics, type MemberMetrics } from '../../shared/metricsTypes';
import { pointFrom, type MetricsWindow } from './window';
import { humanBytes } from '../../shared/etcdTypes';
import { scrapeMetrics, type MetricsTarget } from '../etcd/scrape';
import { servedCertFinding } from './servedCert';

export interface ScrapeRound {
  at: number;
  /** Why a member could not be scraped, in words. */
  errors: Map<string, string>;
  /** Each member's page size and scrape time, for benchmarks and logs. */
  timings: Map<string, { bytes: number; ms: number; parseErrors: number }>;
  /** The end of validity of the certificate each member served (HTTPS scrapes only). */
  served?: Map<string, string>;
}

/** Scrapes every target at once and adds a point per member to `window`. */
export async function scrapeInto(
  window: MetricsWindow,
  targets: readonly MetricsTarget[],
  opts: { tls?: EtcdTls; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ScrapeRound> {
  const at = Date.now();
  const round: ScrapeRound = { at, errors: new Map(), timings: new Map(), served: new Map() };
  await Promise.all(
    targets.map(async (t) => {
      try {
        const r = await scrapeMetrics(t.url, opts);
        const page = parsePrometheus(r.text);
        if (page.samples === 0) throw new Error(`${t.url} served no metrics`);
        // Every member's point carries the round's time, so the charts line up.
        window.add(t.member, pointFrom(page, at));
        round.timings.set(t.member, { bytes: r.bytes, ms: r.ms, parseErrors: page.errors.length });
        if (r.servedNotAfter) round.served?.set(t.member, r.servedNotAfter);
      } catch (err) {
        const p = classifyEtcdError(err, t.endpoint, opts.tls);
        round.errors.set(t.member, `${p.summary}. ${p.hint}`);
      }
    }),
  );
  return round;
}

/**
 * The judgement of every member over the window, and one line for the cluster. `policy`: how
 * much evidence a rule needs (the editor's rolling window by default; the CLI judges its one
 * measured interval). `certWarnDays`: the warning window for the certificate each member served.
 */
export function clusterMetrics(
  cluster: string,
  targets: readonly MetricsTarget[],
  window: MetricsWindow,
  round: Pick<ScrapeRound, 'at' | 'errors' | 'served'>,
  policy: JudgePolicy = DEFAULT_POLICY,
  certWarnDays?: number,
): ClusterMetrics {
  const members: MemberMetrics[] = targets.map((t) => {
    const judged = judgeWindow(window.pointsOf(t.member), policy);
    const { summary } = judged;
    const served = round.served?.get(t.member);
    const findings = served
      ? [...judged.findings, servedCertFinding(served, round.at, certWarnDays)]
      : judged.findings;
    const error = round.errors.get(t.member);
    return {
      member: t.member,
      endpoint: t.endpoint,
      url: t.url,
      ...(error ? { error } : {}),
      ...(summary ? { summary } : {}),
      findings,
      level: error ? 'bad' : levelOf(findings),
      series: window.series(t.member),
    };
  });
  const leader = members.find((m) => !m.error && m.summary?.isLeader);
  const parts: string[] = [];
  parts.push(leader ? `leader ${leader.member}` : 'no leader seen');
  const rate = leader?.summary?.proposalsCommittedPerSec;
  if (rate !== undefined) parts.push(`${rate.toFixed(rate < 10 ? 1 : 0)} proposals/s`);
  const db = leader?.summary ?? members.find((m) => m.summary)?.summary;
  if (db?.dbTotalBytes !== undefined)
    parts.push(
      `DB ${humanBytes(db.dbTotalBytes)}${db.quotaBytes ? ` of ${humanBytes(db.quotaBytes)}` : ''}`,
    );
  const down = members.filter((m) => m.error).length;
  if (down) parts.push(`${down} of ${members.length} not scraped`);
  const broken = members.filter((m) => m.level === 'bad').length;
  if (broken && broken !== down) parts.push(`${broken} breaking etcd's guidance`);
  return {
    cluster,
    at: round.at,
    windowMs: window.windowMs,
    members,
    level: worst(members.map((m) => m.level)),
    summary: parts.join(' · '),
  };
}
