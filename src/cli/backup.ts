/**
 * `k3s-etcd backup install|run|status|keygen`: backups that run on the etcd hosts without the
 * editor (the inventory's `backup:` block), encrypted to public keys whose private halves the
 * person keeps, copied off the host, kept by generation.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { defaultPrivateKeyFile, writeBackupKeyPair } from '../core/backup/keygen';
import { drillBackup, fetchIntoWorkspace, type FetchOptions } from '../core/backup/drill';
import { backupSettings, installBackup } from '../core/backup/install';
import { runBackupNow } from '../core/backup/run';
import { backupStatus, backupSummary } from '../core/backup/status';
import { renderColumns } from '../core/format/table';
import { humanBytes } from '../shared/etcdTypes';
import {
  json,
  loadValid,
  selectCluster,
  UsageError,
  type RunContext,
  type Subcommand,
} from './context';
import { previewGate, printer, report, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

const installCommand: Subcommand = {
  name: 'backup install',
  summary:
    'Put the backup timer on the etcd hosts (and the receiver on destination hosts), over SSH',
  usage: 'k3s-etcd backup install [--remove] [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `From the cluster's backup block in k3s-etcd.yaml: on every backup host (backup.hosts, default
every etcd host) the script, its settings, the recipients' public keys, an SSH key of its own
when a destination is another host (and that host's host key, read through a session this tool
verified), a service and a timer every backup.interval; on each destination host a receiver
restricted to its folder, and the backup hosts' keys in the SSH user's authorized_keys. One host
takes each backup: the one whose member leads, or, when the leader is not a backup host, the
first backup host (in the inventory's order) whose member answers. Shows what would change and
asks (--yes to skip);
--dry-run only shows it; a second run changes nothing. --remove takes away again all it put
there (the timer, its files, the recipients' keys, the SSH key pair and known_hosts, the
receiver's keys, and the receiver once no key runs it); backups already made stay.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, remove: { type: 'boolean', default: false } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const b = backupSettings(cluster);
    const remove = ctx.values['remove'] === true;
    const ssh = await sshContext(ctx);
    const preview = await installBackup(cluster, { ssh, dryRun: true, remove });
    const gate = await previewGate(ctx, preview, {
      nothing: remove
        ? 'No backup timer to remove: nothing to do.'
        : `The backup timer is in place (every ${b.interval}): nothing to do.`,
      question: (n, pending) =>
        remove
          ? `Remove the backup timer from ${pending.join(', ')} (the backups stay)?`
          : `Apply ${n} change(s) on ${pending.join(', ')} (a backup every ${b.interval}, encrypted, copied to ${b.destinations.length} destination(s))?`,
    });
    if (gate !== undefined) return gate;
    const runs = await installBackup(cluster, { ssh, dryRun: false, remove, onLine: printer(ctx) });
    const code = report(ctx, runs);
    if (code === 0 && !remove && !ctx.global.json)
      ctx.io.out(
        `Backups go to ${b.localDir} on the backup host that takes them every ${b.interval}: \`k3s-etcd backup run\` takes one now, \`k3s-etcd backup status\` lists them.`,
      );
    return code;
  },
};

const runCommand: Subcommand = {
  name: 'backup run',
  summary: "Take a backup now: the timer's service started on the backup hosts (one of them acts)",
  usage: 'k3s-etcd backup run [--accept-new-host-keys]',
  details: `Starts k3s-etcd-backup.service on every backup host and waits for it; the host whose member
leads (or, when the leader is not a backup host, the first backup host whose member answers)
takes the backup, the others skip. Prints each host's outcome. Exit 1 when no
host took a backup or the one that did failed (a copy that failed counts).

${SSH_HELP}`,
  options: SSH_OPTIONS,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const r = await runBackupNow(cluster, { ssh: await sshContext(ctx), onLine: printer(ctx) });
    if (ctx.global.json) json(ctx, r);
    else if (!r.acted)
      ctx.io.out('No host took a backup: is the timer installed (backup install)?');
    return r.ok ? 0 : 1;
  },
};

const statusCommand: Subcommand = {
  name: 'backup status',
  summary: 'Every backup on the hosts, where its copies are, the last drill; exit 1 when stale',
  usage: 'k3s-etcd backup status [--json] [--accept-new-host-keys]',
  details: `Reads the backup hosts' records over SSH: time, revision, key count, SHA-256, encryption,
the copies made and the last drill. Exit 1 when the newest backup is older than twice
backup.interval, its copies failed, the last run failed, the last drill failed, or there is none.

${SSH_HELP}`,
  options: SSH_OPTIONS,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const s = await backupStatus(cluster, { ssh: await sshContext(ctx) });
    if (ctx.global.json) {
      json(ctx, {
        ...s,
        backups: s.backups.map(backupSummary),
        fresh: s.problems.length === 0,
        warnings: s.warnings,
      });
    } else {
      if (s.backups.length > 0)
        ctx.io.out(
          renderColumns(
            ['TAKEN', 'ON', 'REVISION', 'KEYS', 'SIZE', 'COPIES', 'DRILL', 'FILE'],
            s.backups.map((b) => [
              b.takenAt,
              b.on,
              String(b.revision),
              String(b.keys),
              humanBytes(b.size),
              b.copies.map((c) => `${c.ok ? '' : 'FAILED '}${c.to}`).join(', ') || 'none',
              b.drill ? (b.drill.ok ? 'passed' : 'FAILED') : '-',
              b.file,
            ]),
          ),
        );
      for (const h of s.hosts)
        if (h.lastRun)
          ctx.io.out(
            `${h.host}: last run ${h.lastRun.finishedAt} ${h.lastRun.result}: ${h.lastRun.summary}`,
          );
      ctx.io.out(
        s.problems.length === 0
          ? `Fresh: the newest backup is within twice the interval (${s.interval}).`
          : `Not fresh:\n${s.problems.map((p) => `  - ${p}`).join('\n')}`,
      );
      if (s.warnings.length > 0)
        ctx.io.out(`Warned by the timer:\n${s.warnings.map((w) => `  - ${w}`).join('\n')}`);
    }
    return s.problems.length === 0 ? 0 : 1;
  },
};

const keygenCommand: Subcommand = {
  name: 'backup keygen',
  summary: 'Make the key pair backups are encrypted to: the private key outside the workspace',
  usage: 'k3s-etcd backup keygen [--out PRIVATE_KEY_FILE]',
  details: `Makes an RSA-4096 pair. The private key goes to --out (default
~/.config/k3s-etcd/backup-<cluster>.key, 0600; keep a copy somewhere safe and offline: without it
no backup can be read). The public key is added to backup.encryption.recipientsFile (created if
needed), which the workspace keeps.`,
  options: { out: { type: 'string' } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const b = backupSettings(cluster);
    const out =
      typeof ctx.values['out'] === 'string'
        ? resolve(ctx.io.cwd, ctx.values['out'])
        : defaultPrivateKeyFile(cluster.name);
    const w = await writeBackupKeyPair({
      privateKeyFile: out,
      recipientsFile: b.recipientsFile,
      workspaceDir: dirname(ctx.global.inventory),
    });
    if (ctx.global.json) json(ctx, w);
    else
      ctx.io.out(
        `Private key: ${w.privateKeyFile} (0600): keep a copy offline; without it no backup can be read.\nPublic key ${w.fingerprint.slice(0, 16)}… added to ${w.recipientsFile}; run \`k3s-etcd backup install\` to give it to the hosts.`,
      );
    return 0;
  },
};

const FETCH_OPTIONS = {
  ...SSH_OPTIONS,
  identity: { type: 'string' as const },
  from: { type: 'string' as const },
  file: { type: 'string' as const },
};

async function fetchOptions(ctx: RunContext): Promise<FetchOptions> {
  const identity = ctx.values['identity'];
  if (typeof identity !== 'string')
    throw new UsageError(
      '--identity PRIVATE_KEY is needed: the private key of one of the recipients (backup keygen made it)',
    );
  const pem = await readFile(identity, 'utf8').catch(() => {
    throw new UsageError(`${identity} cannot be read`);
  });
  return {
    ssh: await sshContext(ctx),
    identity: pem,
    ...(typeof ctx.values['from'] === 'string' ? { from: ctx.values['from'] } : {}),
    ...(typeof ctx.values['file'] === 'string' ? { file: ctx.values['file'] } : {}),
    onLine: (l) => ctx.io.err(l),
  };
}

const drillCommand: Subcommand = {
  name: 'backup drill',
  summary:
    'Prove the newest backup: fetch its copy, decrypt it, restore it into a throwaway etcd here',
  usage:
    'k3s-etcd backup drill --identity PRIVATE_KEY [--from local|HOST|s3] [--file NAME] [--accept-new-host-keys]',
  details: `Streams the newest backup (or --file NAME) from its first copy off the host (--from: a
destination host, s3 through the backup host, or local: the backup host's folder), checks it
against the record's SHA-256, decrypts it with --identity, restores it into a throwaway etcd on
loopback here (etcd and etcdctl from PATH or etcd.uploadPath) and compares its key count and
revision with the record. The result is recorded on the backup hosts, where status reads it.
Exit 1 when the drill fails.

${SSH_HELP}`,
  options: FETCH_OPTIONS,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const d = await drillBackup(cluster, await fetchOptions(ctx));
    if (ctx.global.json) json(ctx, { ...d, record: undefined });
    else ctx.io.out(`${d.ok ? 'PASS' : 'FAIL'}: ${d.file}: ${d.detail}`);
    return d.ok ? 0 : 1;
  },
};

const fetchCommand: Subcommand = {
  name: 'backup fetch',
  summary: 'Bring a backup into backups/<cluster>/, decrypted, for snapshot restore',
  usage:
    'k3s-etcd backup fetch --identity PRIVATE_KEY [--from local|HOST|s3] [--file NAME] [--accept-new-host-keys]',
  details: `Streams the newest backup (or --file NAME) like backup drill does, checks and decrypts it, and
writes it into backups/<cluster>/<UTC time>.db (0600, git-ignored) with the record that
\`k3s-etcd snapshot restore\` checks.

${SSH_HELP}`,
  options: FETCH_OPTIONS,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const info = await fetchIntoWorkspace(
      cluster,
      dirname(ctx.global.inventory),
      await fetchOptions(ctx),
    );
    if (ctx.global.json) json(ctx, info);
    else
      ctx.io.out(
        `${info.file}: ${info.bytes} bytes, revision ${info.revision}, sha256 ${info.sha256}`,
      );
    return 0;
  },
};

export const BACKUP_COMMANDS: Subcommand[] = [
  drillCommand,
  fetchCommand,
  installCommand,
  runCommand,
  statusCommand,
  keygenCommand,
];
