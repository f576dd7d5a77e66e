/**
 * SQLite → external etcd, end to end: source and preflight, token, target, write, verify, report.
 * Each refusal comes before anything is written, with what to do.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { K3sEtcdError } from '../errors';
import { activeAlarms, ETCD_DEFAULT_QUOTA_BYTES, readQuota } from '../etcd/alarms';
import { GRPC_DEFAULT_RECEIVE_BYTES } from '../etcd/client';
import { connectionFor, healthyClient } from '../etcd/connection';
import type { Cluster } from '../inventory/types';
import { backupStamp } from '../format/stamp';
import { checkToken, type TokenCheck } from './bootstrap';
import {
  ETCD_DEFAULT_MAX_REQUEST_BYTES,
  openKine,
  readValue,
  scanKine,
  withValues,
  type KineKey,
} from './kine';
import { preflight, type KinePreflight } from './preflight';
import type { MigrationProgress } from './progress';
import {
  requireEmptyTarget,
  targetCounts,
  verifyTarget,
  writeRows,
  type Verification,
  type WriteResult,
} from './write';

export const MIGRATIONS_DIR = 'migrations';

export interface MigrationSource {
  pre: KinePreflight;
  /** The keys to write, by revision, without their values (read from the file when written). */
  keys: KineKey[];
  /** The target's request limit the preflight checked against; the writes keep under it. */
  maxRequestBytes: number;
  token: TokenCheck | { key?: undefined; found: false; note: string };
  /** The files as they were read: the migration refuses them if they changed since. */
  stamp: string;
}

/** The token given, or the `token` file beside the source (a backup made by k3s-etcd). */
export async function sourceToken(source: string, given?: string): Promise<string | undefined> {
  if (given) return given.trim();
  const beside = join(dirname(source), 'token');
  return existsSync(beside) ? (await readFile(beside, 'utf8')).trim() : undefined;
}

/**
 * Opens and checks the source (one pass over the table, then every value hashed); refuses
 * oversize values and a token that does not fit.
 */
export async function readSource(
  source: string,
  opts: {
    token?: string;
    maxRequestBytes?: number;
    signal?: AbortSignal;
    onProgress?(p: MigrationProgress): void;
  } = {},
): Promise<MigrationSource> {
  const src = await openKine(source);
  try {
    const scan = await scanKine(src, opts);
    const maxRequestBytes = opts.maxRequestBytes ?? ETCD_DEFAULT_MAX_REQUEST_BYTES;
    const pre = await preflight(src, scan, maxRequestBytes, opts);
    if (pre.tooLarge.length > 0) {
      const t = pre.tooLarge[0]!;
      throw new K3sEtcdError(
        'migrate-source',
        `${t.key} holds ${t.bytes} bytes: with its transaction that is more than the target accepts in one request (${maxRequestBytes} bytes${pre.tooLarge.length > 1 ? `; ${pre.tooLarge.length} keys in all` : ''}). Raise etcd.maxRequestBytes in k3s-etcd.yaml and apply it with \`k3s-etcd provision etcd\` (the migration then plans for it), or give the target's own limit with --max-request-bytes. Nothing was written.`,
      );
    }
    const token = await sourceToken(source, opts.token);
    let check: MigrationSource['token'];
    if (token)
      check = checkToken(
        withValues(
          src,
          scan.keys.filter((k) => k.name.startsWith('/bootstrap/')),
        ),
        token,
      );
    else if (pre.bootstrapKeys.length > 0)
      throw new K3sEtcdError(
        'migrate-token',
        `The state holds K3s's bootstrap data (${pre.bootstrapKeys.join(', ')}), sealed with the server token: give it (--token or --token-file; a k3s-etcd backup keeps it beside state.db) so it can be checked before anything is written.`,
      );
    else check = { found: false, note: 'no token given and no /bootstrap key in the state' };
    return { pre, keys: scan.keys, token: check, maxRequestBytes, stamp: src.stamp };
  } finally {
    src.close();
  }
}

/**
 * Quota: a target with a NOSPACE alarm is refused; so is one whose database plus what the
 * migration writes (with room for etcd's own overhead) would pass its quota (`quotaBytes`, read
 * from its /metrics; etcd's default 2 GiB when unknown).
 */
export async function requireRoom(
  client: Etcd3,
  bytes: number,
  quotaBytes = ETCD_DEFAULT_QUOTA_BYTES,
): Promise<void> {
  const raise =
    'raise etcd.quotaBackendBytes in k3s-etcd.yaml (for example 8GiB) and apply it with provision';
  if ((await activeAlarms(client)).some((a) => a.alarm === 'NOSPACE')) {
    throw new K3sEtcdError(
      'migrate-target',
      `The target etcd has a NOSPACE alarm (its quota is full): compact, defragment and disarm it, or ${raise}, before migrating. Nothing was written.`,
    );
  }
  const status = await client.maintenance.status();
  const after = Number(status.dbSize) + bytes * 2;
  if (after > quotaBytes) {
    const mb = (n: number) => Math.round(n / 1048576);
    const quota =
      quotaBytes === ETCD_DEFAULT_QUOTA_BYTES
        ? "etcd's default quota of 2 GB"
        : `its quota of ${mb(quotaBytes)} MB`;
    throw new K3sEtcdError(
      'migrate-target',
      `The target's database (${mb(Number(status.dbSize))} MB) plus about ${mb(bytes * 2)} MB for the migration passes ${quota}: ${raise} first. Nothing was written.`,
    );
  }
}

export interface MigrationResult {
  target: Record<string, number>;
  write: WriteResult;
  verify: Verification;
  ms: number;
}

export async function migrateToEtcd(
  cluster: Cluster,
  source: MigrationSource,
  opts: {
    force?: boolean;
    signal?: AbortSignal;
    onProgress?(p: MigrationProgress): void;
    batch?: number;
  },
): Promise<MigrationResult> {
  // The values are read again from the file: it must be the one the preflight read.
  const src = await openKine(source.pre.path);
  try {
    if (src.stamp !== source.stamp) {
      throw new K3sEtcdError(
        'migrate-source',
        `${source.pre.path} (or its -wal) changed since it was read: stop K3s, and read it again. Nothing was written.`,
      );
    }
    // A value may be as large as the target's request limit: the read-back must take it.
    const { client } = await healthyClient(cluster, {
      timeoutMs: 10_000,
      maxReceiveBytes: Math.max(GRPC_DEFAULT_RECEIVE_BYTES, source.maxRequestBytes + 1024 * 1024),
    });
    try {
      const t0 = performance.now();
      const target = await targetCounts(client);
      requireEmptyTarget(target, opts.force === true);
      const conn = await connectionFor(cluster);
      const quota = await readQuota(conn.endpoints, conn.tls);
      await requireRoom(client, source.pre.totalBytes, quota);
      const write = await writeRows(client, source.keys, (k) => readValue(src, k), {
        ...opts,
        rows: source.pre.rows,
        maxRequestBytes: source.maxRequestBytes,
      });
      const verify = await verifyTarget(client, source.keys, source.pre.sha256, {
        ...opts,
        rows: source.pre.rows,
      });
      return { target, write, verify, ms: performance.now() - t0 };
    } finally {
      client.close();
    }
  } finally {
    src.close();
  }
}

const table = (rows: [string, string | number][]) =>
  ['| | |', '|---|---|', ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join('\n');

/** The Markdown report: the preflight's figures, and after a run what was written and verified. */
export function migrationReport(cluster: string, s: MigrationSource, r?: MigrationResult): string {
  const p = s.pre;
  const out = [
    `# SQLite → etcd migration: cluster ${cluster}${r ? '' : ' (dry run: nothing written)'}`,
    '',
    table([
      ['source', p.path],
      ['WAL frames applied', p.walFrames],
      ['schema', `kine, name ${p.nameType}`],
      ['integrity (kine table: B-tree, rows in order, overflow chains read)', p.integrity],
      ['rows (history)', p.rows],
      ['current revision', p.currentRevision],
      ['compact revision', p.compactRevision],
      ['live keys to write', p.liveKeys],
      ['largest value', p.largest ? `${p.largest.key} (${p.largest.bytes} bytes)` : '-'],
      ['bytes to write (keys and values)', p.totalBytes],
      [
        'values',
        Object.entries(p.byKind)
          .map(([k, n]) => `${k} ${n}`)
          .join(', '),
      ],
      [
        'leased keys by TTL',
        Object.entries(p.leases)
          .map(([t, n]) => `${t} s: ${n}`)
          .join(', ') || 'none',
      ],
      ['token', s.token.note],
      ['SHA-256 of (key, value) pairs', p.sha256],
    ]),
    '',
    '## Keys by prefix',
    '',
    table(Object.entries(p.byPrefix).sort((a, b) => b[1] - a[1])),
    '',
  ];
  if (r) {
    out.push(
      '## Result',
      '',
      table([
        [
          'target before',
          Object.entries(r.target)
            .map(([k, n]) => `${k} ${n}`)
            .join(', '),
        ],
        ['written', r.write.written],
        ['already there (resumed)', r.write.alreadyThere],
        [
          'conflicts (left untouched)',
          r.write.conflicts.length ? r.write.conflicts.join(', ') : 'none',
        ],
        [
          'leases granted',
          Object.entries(r.write.leases)
            .map(([t, id]) => `${t} s → ${id}`)
            .join(', ') || 'none',
        ],
        ['keys found / expected', `${r.verify.foundKeys} / ${r.verify.expectedKeys}`],
        ['leased keys found / expected', `${r.verify.leasedFound} / ${r.verify.leasedExpected}`],
        ['target SHA-256', r.verify.targetSha256],
        ['verified', r.verify.ok ? 'yes: same keys, same bytes' : 'NO'],
        ['time', `${Math.round(r.ms)} ms`],
      ]),
      '',
    );
  }
  out.push(
    '## Revisions',
    '',
    "Revision numbers restart in etcd: kine's revisions are not carried (etcd numbers its own writes). Kubernetes clients relist once when they reconnect. For a fresh target that must start above the old revision, restore an etcd snapshot with `etcdutl snapshot restore --bump-revision <n> --mark-compacted` instead.",
    '',
    '## Next',
    '',
    'Point K3s at this etcd with the same token (`k3s-etcd k3s install`), never with `cluster-init`.',
    '',
  );
  return out.join('\n');
}

/** Saves the report under migrations/<UTC time>/report.md in the workspace. */
export async function saveReport(workspaceDir: string, text: string): Promise<string> {
  const dir = join(workspaceDir, MIGRATIONS_DIR, backupStamp(new Date()));
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'report.md');
  await writeFile(file, text);
  return file;
}
