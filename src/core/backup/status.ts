/**
 * `k3s-etcd backup status`: what each backup host holds (records, where their copies went, the
 * last run, the drills), read over SSH and parsed as hostile input, and whether the backups are
 * fresh: the newest one no older than twice the interval, the last run and the last drill not
 * failed. Freshness is judged against `now`, so a test can age a record instead of waiting.
 */
import { errorMessage } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { shellQuote as q } from '../ssh/quote';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { backupHosts, backupSettings } from './install';
import { BACKUP_FILE, isRecord, parseBackupRecord, type BackupRecord } from './record';

export interface Copy {
  to: string;
  ok: boolean;
}

export interface LastRun {
  host: string;
  startedAt: string;
  finishedAt: string;
  result: 'done' | 'skipped' | 'failed';
  summary: string;
  /** The host's certificates that end within the timer's warning window (CERT_WARN_DAYS). */
  certWarnings?: string[];
}

export interface DrillResult {
  at: string;
  file: string;
  ok: boolean;
  detail: string;
}

export interface BackupEntry extends BackupRecord {
  /** The backup host that holds it. */
  on: string;
  copies: Copy[];
  drill?: DrillResult;
}

export interface BackupStatus {
  cluster: string;
  interval: string;
  backups: BackupEntry[];
  hosts: Array<{ host: string; lastRun?: LastRun; error?: string }>;
  newest?: BackupEntry;
  lastDrill?: DrillResult;
  /** What makes the backups not fresh, in words; empty when they are. */
  problems: string[];
  /** What the timer warns about ahead (certificates that end soon on a backup host). */
  warnings: string[];
}

/**
 * One backup as `backup status --json` lists it. `encrypted` is read from the record: a backup is
 * encrypted when its record wraps the passphrase of the ciphertext for at least one recipient
 * (without one, nothing this tool knows of could read it as a backup).
 */
export function backupSummary(b: BackupEntry) {
  return {
    file: b.file,
    takenAt: b.takenAt,
    on: b.on,
    member: b.member,
    revision: b.revision,
    keys: b.keys,
    size: b.size,
    sha256: b.sha256,
    encrypted: b.recipients.length > 0,
    encryptedSha256: b.encryptedSha256,
    recipients: b.recipients.map((r) => r.fingerprint),
    copies: b.copies,
    ...(b.drill ? { drill: b.drill } : {}),
  };
}

const MAX_LIST = 500;
const PART = /^== ([A-Za-z0-9][A-Za-z0-9._-]{0,120})$/;

/** One host's files: `== NAME` then its content, for the JSON files of the folder. */
export function listCommand(dir: string): string {
  return `cd ${q(dir)} 2>/dev/null || exit 0; for f in $(ls -1t | grep '\\.json$' | head -n ${MAX_LIST * 2}) drills/*.json; do [ -f "$f" ] || continue; echo "== $(basename "$f")"; head -c 65536 "$f"; echo; done`;
}

const str = (v: unknown, n = 300) =>
  typeof v === 'string' ? v.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, n) : '';

/** Parses what `listCommand` printed. */
export function parseListing(out: string): {
  records: BackupRecord[];
  copies: Map<string, Copy[]>;
  drills: Map<string, DrillResult>;
  lastRun?: LastRun;
} {
  const files = new Map<string, string>();
  let name: string | undefined;
  for (const line of out.split('\n')) {
    const m = PART.exec(line);
    if (m) {
      name = m[1]!;
      files.set(name, '');
    } else if (name) files.set(name, files.get(name)! + line + '\n');
  }
  const json = (t: string): unknown => {
    try {
      return JSON.parse(t);
    } catch {
      return undefined;
    }
  };
  const records: BackupRecord[] = [];
  const copies = new Map<string, Copy[]>();
  const drills = new Map<string, DrillResult>();
  let lastRun: LastRun | undefined;
  for (const [n, text] of files) {
    if (n === 'last-run.json') {
      const v = json(text) as Record<string, unknown> | undefined;
      const warned = Array.isArray(v?.['certWarnings'])
        ? (v['certWarnings'] as unknown[])
            .filter((w): w is string => typeof w === 'string')
            .slice(0, 32)
            .map((w) => str(w))
        : [];
      if (v && ['done', 'skipped', 'failed'].includes(v['result'] as string))
        lastRun = {
          host: str(v['host'], 63),
          startedAt: str(v['startedAt'], 30),
          finishedAt: str(v['finishedAt'], 30),
          result: v['result'] as LastRun['result'],
          summary: str(v['summary']),
          ...(warned.length > 0 ? { certWarnings: warned } : {}),
        };
    } else if (n.endsWith('.copies.json')) {
      const v = json(text);
      if (Array.isArray(v))
        copies.set(
          n.slice(0, -'.copies.json'.length),
          v
            .filter((c) => c && typeof c === 'object')
            .slice(0, 16)
            .map((c: Record<string, unknown>) => ({ to: str(c['to'], 200), ok: c['ok'] === true })),
        );
    } else if (n.startsWith('drill-')) {
      const v = json(text) as Record<string, unknown> | undefined;
      const file = str(v?.['file'], 100);
      if (v && BACKUP_FILE.test(file))
        drills.set(file, {
          at: str(v['at'], 30),
          file,
          ok: v['ok'] === true,
          detail: str(v['detail']),
        });
    } else {
      const r = parseBackupRecord(text);
      if (isRecord(r) && `${r.file.slice(0, -'.db.gz.enc'.length)}.json` === n) records.push(r);
    }
  }
  return { records, copies, drills, ...(lastRun ? { lastRun } : {}) };
}

function age(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48
    ? `${Math.round(h / 24)} days`
    : h >= 2
      ? `${Math.round(h)} hours`
      : `${Math.round(ms / 60_000)} minutes`;
}

/** The judgement over what the hosts hold. */
export function judge(
  cluster: Cluster,
  parts: Array<{ host: string; listing?: ReturnType<typeof parseListing>; error?: string }>,
  now: number,
): BackupStatus {
  const b = backupSettings(cluster);
  const backups: BackupEntry[] = parts
    .flatMap((p) =>
      (p.listing?.records ?? []).map((r) => {
        const base = r.file.slice(0, -'.db.gz.enc'.length);
        const drill = p.listing?.drills.get(r.file);
        return {
          ...r,
          on: p.host,
          copies: p.listing?.copies.get(base) ?? [],
          ...(drill ? { drill } : {}),
        };
      }),
    )
    .sort((x, y) => (x.takenAt < y.takenAt ? 1 : -1));
  const newest = backups[0];
  const drills = parts
    .flatMap((p) => [...(p.listing?.drills.values() ?? [])])
    .sort((x, y) => (x.at < y.at ? 1 : -1));
  const lastDrill = drills[0];
  const problems: string[] = [];
  for (const p of parts) if (p.error) problems.push(`${p.host}: ${p.error}`);
  if (!newest) problems.push(`no backup yet on ${parts.map((p) => p.host).join(', ')}`);
  else {
    const old = now - Date.parse(newest.takenAt);
    if (old > 2 * b.intervalSeconds * 1000)
      problems.push(
        `the newest backup (${newest.file}, on ${newest.on}) is ${age(old)} old: more than twice the interval (${b.interval}); is the timer running? (systemctl status k3s-etcd-backup.timer)`,
      );
    const failedCopies = newest.copies.filter((c) => !c.ok);
    if (failedCopies.length > 0)
      problems.push(
        `the newest backup was not copied to ${failedCopies.map((c) => c.to).join(', ')}`,
      );
  }
  const runs = parts
    .map((p) => p.listing?.lastRun)
    .filter((r): r is LastRun => !!r && r.result !== 'skipped')
    .sort((x, y) => (x.finishedAt < y.finishedAt ? 1 : -1));
  if (runs[0]?.result === 'failed')
    problems.push(`the last backup run on ${runs[0].host} failed: ${runs[0].summary}`);
  if (lastDrill && !lastDrill.ok)
    problems.push(
      `the last drill (${lastDrill.file}, ${lastDrill.at}) failed: ${lastDrill.detail}`,
    );
  const warnings = parts.flatMap((p) => p.listing?.lastRun?.certWarnings ?? []);
  return {
    cluster: cluster.name,
    interval: b.interval,
    backups,
    hosts: parts.map((p) => ({
      host: p.host,
      ...(p.listing?.lastRun ? { lastRun: p.listing.lastRun } : {}),
      ...(p.error ? { error: p.error } : {}),
    })),
    ...(newest ? { newest } : {}),
    ...(lastDrill ? { lastDrill } : {}),
    problems,
    warnings,
  };
}

/** Reads every backup host (a host that does not answer is a problem, not an error). */
export async function backupStatus(
  cluster: Cluster,
  opts: { ssh: SshContext; now?: number; signal?: AbortSignal },
): Promise<BackupStatus> {
  const b = backupSettings(cluster);
  const parts = await Promise.all(
    backupHosts(cluster).map(async (h: Host) => {
      try {
        const t = await sshOpener(cluster, h, opts.ssh)(opts.signal);
        try {
          const r = await t.exec(listCommand(b.localDir), {
            sudo: true,
            ...(opts.signal ? { signal: opts.signal } : {}),
          });
          return { host: h.name, listing: parseListing(r.stdout) };
        } finally {
          t.close();
        }
      } catch (err) {
        return { host: h.name, error: `cannot read its backups (${errorMessage(err)})` };
      }
    }),
  );
  return judge(cluster, parts, opts.now ?? Date.now());
}
