/**
 * Reading `/metrics` from etcd members with the same mutual-TLS client files as everything else
 * (or plain HTTP for a metrics listener the inventory configured that way), then turning a round
 * of scrapes into the per-member and cluster judgement.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Cluster } from '../inventory/types';
import { clientUrl, etcdHosts, metricsUrl } from '../inventory/select';
import { tlsCredentials, type EtcdTls } from '../etcd/client';
import { classifyEtcdError } from '../etcd/problems';
import { judgeMember, levelOf } from './judge';
import { parsePrometheus } from './prometheus';
import { worst, type ClusterMetrics, type MemberMetrics } from './types';
import { pointFrom, type MetricsWindow } from './window';
import { humanBytes } from '../../shared/etcdTypes';

export interface MetricsTarget {
  member: string;
  endpoint: string;
  url: string;
}

export function metricsTargets(cluster: Cluster): MetricsTarget[] {
  return etcdHosts(cluster).map((h) => ({
    member: h.memberName,
    endpoint: clientUrl(cluster, h),
    url: metricsUrl(cluster, h),
  }));
}

/** Targets for bare endpoints (CLI --endpoints): /metrics on each client URL. */
export function endpointTargets(endpoints: readonly string[]): MetricsTarget[] {
  return endpoints.map((e) => ({
    member: new URL(e).host,
    endpoint: e,
    url: `${e.replace(/\/+$/, '')}/metrics`,
  }));
}

/** A /metrics page of etcd is about 150 KB; anything far larger is not etcd. */
const MAX_BYTES = 32 * 1024 * 1024;

export interface ScrapeResult {
  text: string;
  bytes: number;
  ms: number;
}

export async function scrapeMetrics(
  url: string,
  opts: { tls?: EtcdTls; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ScrapeResult> {
  const started = performance.now();
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const creds = https && opts.tls ? await tlsCredentials(opts.tls) : undefined;
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise<ScrapeResult>((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${url} answered HTTP ${res.statusCode ?? '?'} instead of metrics`));
        return;
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > MAX_BYTES) {
          req.destroy(new Error(`${url} sent more than ${MAX_BYTES} bytes: not etcd's metrics`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () =>
        resolve({
          text: Buffer.concat(chunks).toString('utf8'),
          bytes,
          ms: performance.now() - started,
        }),
      );
      res.on('error', reject);
    };
    const options = {
      method: 'GET',
      agent: false as const,
      timeout: timeoutMs,
      headers: { accept: 'text/plain;version=0.0.4' },
      // SNI carries host names only; an IP address is checked against the certificate's IP SANs.
      servername: isIP(u.hostname.replace(/^\[|\]$/g, '')) ? '' : u.hostname,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(creds ? { ca: creds.rootCertificate, cert: creds.certChain, key: creds.privateKey } : {}),
    };
    const req = https ? httpsRequest(u, options, onResponse) : httpRequest(u, options, onResponse);
    const deadline = setTimeout(
      () =>
        req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms (DeadlineExceeded)`)),
      timeoutMs,
    );
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () =>
      req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms (DeadlineExceeded)`)),
    );
    req.on('error', reject);
    req.end();
  });
}

export interface ScrapeRound {
  at: number;
  /** Why a member could not be scraped, in words. */
  errors: Map<string, string>;
  /** Each member's page size and scrape time, for benchmarks and logs. */
  timings: Map<string, { bytes: number; ms: number; parseErrors: number }>;
}

/** Scrapes every target at once and adds a point per member to `window`. */
export async function scrapeInto(
  window: MetricsWindow,
  targets: readonly MetricsTarget[],
  opts: { tls?: EtcdTls; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ScrapeRound> {
  const at = Date.now();
  const round: ScrapeRound = { at, errors: new Map(), timings: new Map() };
  await Promise.all(
    targets.map(async (t) => {
      try {
        const r = await scrapeMetrics(t.url, opts);
        const page = parsePrometheus(r.text);
        if (page.samples === 0) throw new Error(`${t.url} served no metrics`);
        // Every member's point carries the round's time, so the charts line up.
        window.add(t.member, pointFrom(page, at));
        round.timings.set(t.member, { bytes: r.bytes, ms: r.ms, parseErrors: page.errors.length });
      } catch (err) {
        const p = classifyEtcdError(err, t.endpoint, opts.tls);
        round.errors.set(t.member, `${p.summary}. ${p.hint}`);
      }
    }),
  );
  return round;
}

/** The judgement of every member over the window, and one line for the cluster. */
export function clusterMetrics(
  cluster: string,
  targets: readonly MetricsTarget[],
  window: MetricsWindow,
  round: Pick<ScrapeRound, 'at' | 'errors'>,
): ClusterMetrics {
  const members: MemberMetrics[] = targets.map((t) => {
    const summary = window.summary(t.member);
    const findings = summary ? judgeMember(summary) : [];
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
