/**
 * Debian's Prometheus server (`apt-get install prometheus`: 2.42) run on a loopback port with a
 * given configuration and its own storage in a temp dir, and its HTTP API: instant queries,
 * targets and alerts. The package's own service is never used; the process group is tracked and
 * killed at exit whatever happens.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './net';
import {
  killGroup,
  makeTempDir,
  removeTempDir,
  sleep,
  trackGroup,
  untrackGroup,
  waitUntil,
} from './processes';

export interface PromTarget {
  labels: Record<string, string>;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  scrapeUrl: string;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  url: string;
  log(): string;
  /** An instant query; rejects with Prometheus's error when it refuses the expression. */
  query(expr: string): Promise<PromSample[]>;
  targets(): Promise<PromTarget[]>;
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
  errorType?: string;
}

export async function startPrometheus(configFile: string): Promise<Prometheus> {
  const dir = await makeTempDir('k3s-etcd-prometheus-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  let exited = false;
  child.on('exit', () => (exited = true));
  const pid = child.pid as number;
  trackGroup(pid, () => !exited);
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as ApiAnswer<T>;
    if (body.status !== 'success')
      throw new Error(`${path}: ${body.errorType ?? ''} ${body.error ?? res.status}`);
    return body.data;
  };
  const stop = async () => {
    killGroup(pid, 'SIGTERM');
    const until = Date.now() + 10_000;
    while (!exited && Date.now() < until) await sleep(50);
    if (!exited) killGroup(pid, 'SIGKILL');
    untrackGroup(pid);
    await removeTempDir(dir);
  };
  try {
    await waitUntil(
      async () => exited || (await fetch(`${url}/-/ready`)).status === 200,
      30_000,
      `prometheus ready on ${url}`,
    );
    if (exited) throw new Error('prometheus exited');
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${out}`);
  }
  return {
    url,
    log: () => out,
    query: async (expr) =>
      (await api<{ result: PromSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`))
        .result,
    targets: async () =>
      (await api<{ activeTargets: PromTarget[] }>('/api/v1/targets?state=active')).activeTargets,
    alerts: async () => (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts,
    stop,
  };
}
