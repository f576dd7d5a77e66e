/** Reading a member's Prometheus /metrics page over HTTP(S), with the cluster's client certificate. */
import type * as Http from 'node:http';
import type { IncomingMessage } from 'node:http';
import { ipVersion } from '../inventory/addressFormat';
import { clientUrl, etcdHosts, metricsUrl } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { tlsCredentials, type EtcdTls } from './client';

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
  /** Over HTTPS: the end of validity of the certificate the member served (ISO time). */
  servedNotAfter?: string;
}

/** When the certificate a TLS socket's peer presented stops being valid, if it is one. */
function servedNotAfter(res: IncomingMessage): string | undefined {
  const socket = res.socket as { getPeerCertificate?: () => { valid_to?: string } };
  const validTo = socket.getPeerCertificate?.().valid_to;
  const t = validTo ? Date.parse(validTo) : NaN;
  return Number.isFinite(t) ? new Date(t).toISOString() : undefined;
}

export async function scrapeMetrics(
  url: string,
  opts: { tls?: EtcdTls; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ScrapeResult> {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  // Loaded on the first scrape: `health` and `members` import this module and never scrape.
  // `require`, not import(): the command line's bundle runs in a vm.Script (src/cli/codeCache.ts).
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { request } = (https ? require('node:https') : require('node:http')) as typeof Http;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const started = performance.now();
  const creds = https && opts.tls ? await tlsCredentials(opts.tls) : undefined;
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise<ScrapeResult>((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${url} answered HTTP ${res.statusCode ?? '?'} instead of metrics`));
        return;
      }
      const notAfter = https ? servedNotAfter(res) : undefined;
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
          ...(notAfter ? { servedNotAfter: notAfter } : {}),
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
      servername: ipVersion(u.hostname.replace(/^\[|\]$/g, '')) ? '' : u.hostname,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(creds ? { ca: creds.rootCertificate, cert: creds.certChain, key: creds.privateKey } : {}),
    };
    const req = request(u, options, onResponse);
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
