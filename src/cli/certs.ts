/** `k3s-etcd certs generate|inspect|import-ca|reissue|check`. */
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { renderColumns } from '../core/format/table';
import { addIgnore, isIgnored, keyIgnorePattern } from '../core/pki/gitignore';
import { writtenText } from '../core/pki/store';
import {
  describePlan,
  formatInspection,
  importCa,
  inspectCertificate,
  planCertificateSet,
  planReissue,
  readIndex,
  writePlan,
  CA_FILES,
  type PkiOptions,
  type SetPlan,
  type WriteResult,
} from '../core/pki/set';
import type { Cluster } from '../core/inventory/types';
import { checkDeployedCertificates, DEFAULT_WARN_DAYS } from '../core/pkiHost/check';
import { checkText } from '../core/pkiHost/render';
import {
  confirm,
  json,
  loadValid,
  selectCluster,
  UsageError,
  type Options,
  type RunContext,
  type Subcommand,
} from './context';
import { SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

export const PASSPHRASE_OPTION: Options = { 'ca-passphrase-file': { type: 'string' } };
const WRITE_OPTIONS: Options = {
  ...PASSPHRASE_OPTION,
  'dry-run': { type: 'boolean', default: false },
  gitignore: { type: 'boolean', default: false },
};

export function pkiOptions(ctx: RunContext): PkiOptions {
  const file = ctx.values['ca-passphrase-file'];
  return {
    askPassphrase: async (label, retry) => {
      if (typeof file === 'string') {
        if (retry) return undefined;
        return (await readFile(resolve(ctx.io.cwd, file), 'utf8')).split(/\r?\n/)[0] ?? '';
      }
      if (!ctx.io.interactive) {
        throw new UsageError(
          `${label} is encrypted: pass --ca-passphrase-file FILE (there is no terminal to ask)`,
        );
      }
      return ctx.io.askSecret(`${retry ? 'Wrong passphrase. ' : ''}Passphrase for ${label}: `);
    },
    confirmReplace: async (files, reasons) => {
      const list = files.map((f) => `  ${relative(ctx.io.cwd, f) || f}`).join('\n');
      ctx.io.err(
        `These existing files would be replaced:\n${list}\nbecause:\n${reasons.map((r) => `  ${r}`).join('\n')}`,
      );
      return confirm(ctx, `Replace ${files.length} file(s)?`);
    },
  };
}

function printPlan(ctx: RunContext, plan: SetPlan, dryRun: boolean): void {
  if (ctx.global.json) return;
  ctx.io.out(
    `${dryRun ? 'Would write' : 'Plan'} for ${plan.cluster} in ${relative(ctx.io.cwd, plan.dir) || plan.dir} (${plan.algorithm}):`,
  );
  for (const line of describePlan(plan)) ctx.io.out(`  ${line}`);
  for (const w of plan.warnings) ctx.io.err(`warning: ${w}`);
}

async function afterWrite(ctx: RunContext, cluster: Cluster, result: WriteResult): Promise<void> {
  const root = dirname(ctx.global.inventory);
  const pattern = keyIgnorePattern(root, cluster.pki.dir);
  let ignored: boolean | undefined;
  if (pattern) {
    if (ctx.values['gitignore'] === true) await addIgnore(root, pattern);
    ignored = await isIgnored(root, pattern);
  }
  if (ctx.global.json) {
    json(ctx, {
      cluster: cluster.name,
      dir: cluster.pki.dir,
      written: result.written,
      warnings: result.plan.warnings,
      keysIgnoredByGit: ignored,
      index: result.index,
    });
    return;
  }
  ctx.io.out(
    result.written.length
      ? `Wrote ${writtenText(result.written)}; keys 0600, certificates 0644; index.json updated.`
      : 'Nothing to write: every certificate is current.',
  );
  if (pattern && !ignored)
    ctx.io.err(
      `hint: private keys are not ignored by git; rerun with --gitignore to add "${pattern}" to .gitignore`,
    );
}

async function writeAfterPlan(
  ctx: RunContext,
  cluster: Cluster,
  plan: SetPlan,
  opts: PkiOptions,
): Promise<number> {
  const dryRun = ctx.values['dry-run'] === true;
  printPlan(ctx, plan, dryRun);
  if (dryRun) {
    if (ctx.global.json) json(ctx, plan);
    return 0;
  }
  await afterWrite(ctx, cluster, await writePlan(cluster, plan, opts));
  return 0;
}

export const CERTS_COMMANDS: Subcommand[] = [
  {
    name: 'certs generate',
    summary: 'Create the CA and every server, peer and client certificate the inventory calls for',
    usage:
      'k3s-etcd certs generate [--cluster NAME] [--dry-run] [--gitignore] [--ca-passphrase-file F] [--yes] [--json]',
    details:
      "Writes into the cluster's pki dir (default pki/<cluster>): ca.pem, ca-key.pem, <member>/server.pem,\n" +
      '<member>/peer.pem, client/k3s.pem, client/admin.pem with their -key.pem files, and index.json.\n' +
      'An existing CA is reused; current certificates are kept; stale ones (other SANs, expiring,\n' +
      'another CA) are replaced only after confirmation naming the files. --gitignore adds the key\n' +
      'pattern to .gitignore.',
    options: WRITE_OPTIONS,
    async run(ctx) {
      const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
      const opts = pkiOptions(ctx);
      return writeAfterPlan(ctx, cluster, await planCertificateSet(cluster, opts), opts);
    },
  },
  {
    name: 'certs reissue',
    summary: "Re-issue one member's server and peer certificates under the same CA",
    usage: 'k3s-etcd certs reissue MEMBER [--san NAME,...] [--dry-run] [--yes] [--json]',
    details:
      'SANs come from the inventory (address, host name, extra sans, 127.0.0.1, localhost) plus --san.',
    options: { ...WRITE_OPTIONS, san: { type: 'string' } },
    maxArgs: 1,
    async run(ctx) {
      const member = ctx.args[0];
      if (!member) throw new UsageError('certs reissue needs the member name');
      const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
      const extra =
        typeof ctx.values['san'] === 'string'
          ? ctx.values['san']
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : [];
      const opts = pkiOptions(ctx);
      return writeAfterPlan(ctx, cluster, await planReissue(cluster, member, extra, opts), opts);
    },
  },
  {
    name: 'certs import-ca',
    summary: "Use an existing CA (cfssl, openssl, K3s) to issue this cluster's certificates",
    usage:
      'k3s-etcd certs import-ca --cert CA.pem --key CA-KEY.pem [--ca-passphrase-file F] [--yes] [--json]',
    details:
      'Checks that it is a CA, not expired, and that the key belongs to it, before writing anything.',
    options: { ...PASSPHRASE_OPTION, cert: { type: 'string' }, key: { type: 'string' } },
    async run(ctx) {
      const cert = ctx.values['cert'];
      const key = ctx.values['key'];
      if (typeof cert !== 'string' || typeof key !== 'string')
        throw new UsageError('certs import-ca needs --cert and --key');
      const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
      const result = await importCa(
        cluster,
        resolve(ctx.io.cwd, cert),
        resolve(ctx.io.cwd, key),
        pkiOptions(ctx),
      );
      if (ctx.global.json) json(ctx, { cluster: cluster.name, written: result.written });
      else
        ctx.io.out(
          `Imported the CA into ${relative(ctx.io.cwd, cluster.pki.dir) || cluster.pki.dir}. Run \`k3s-etcd certs generate\` to issue the certificates.`,
        );
      return 0;
    },
  },
  {
    name: 'certs inspect',
    summary: 'Show a certificate (or every certificate of the cluster) with chain and key checks',
    usage: 'k3s-etcd certs inspect [FILE] [--ca CA.pem] [--key KEY.pem] [--cluster NAME] [--json]',
    details:
      "Without FILE, lists the cluster's certificates from index.json. Exit 1 when a certificate\nis expired, not signed by the CA, or its key does not match.",
    options: { ca: { type: 'string' }, key: { type: 'string' } },
    maxArgs: 1,
    async run(ctx) {
      const file = ctx.args[0];
      if (file) {
        const path = resolve(ctx.io.cwd, file);
        const caOpt = ctx.values['ca'];
        const keyOpt = ctx.values['key'];
        const i = await inspectCertificate(path, {
          ...(typeof caOpt === 'string'
            ? { caFile: resolve(ctx.io.cwd, caOpt) }
            : await defaultCa(ctx, path)),
          keyFile:
            typeof keyOpt === 'string'
              ? resolve(ctx.io.cwd, keyOpt)
              : path.replace(/\.pem$/, '-key.pem'),
        });
        if (ctx.global.json) json(ctx, i);
        else ctx.io.out(formatInspection(i));
        const bad =
          i.info.expiry === 'expired' || i.chain?.ok === false || i.keyMatch?.ok === false;
        return bad ? 1 : 0;
      }
      const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
      const index = await readIndex(cluster.pki.dir);
      if (!index) {
        ctx.io.err(
          `No certificates for ${cluster.name} in ${relative(ctx.io.cwd, cluster.pki.dir) || cluster.pki.dir} yet: run \`k3s-etcd certs generate\`.`,
        );
        return 1;
      }
      if (ctx.global.json) {
        json(ctx, index);
      } else {
        const rows = index.entries.map((e) => [
          e.name,
          e.path,
          e.sans.join(',') || '-',
          e.notAfter.slice(0, 10),
          e.expiry,
          e.sha256.slice(0, 23),
        ]);
        ctx.io.out(renderColumns(['NAME', 'FILE', 'SANS', 'EXPIRES', 'STATE', 'SHA-256'], rows));
      }
      return index.entries.some((e) => e.expiry === 'expired') ? 1 : 0;
    },
  },
  {
    name: 'certs check',
    summary:
      'Compare the certificates deployed on the hosts and served by the members with the workspace',
    usage: 'k3s-etcd certs check [--warn-days N] [--json] [--accept-new-host-keys]',
    details: `Reads, over SSH in one root batch per host, the certificate files of every etcd member
(/etc/etcd/pki: ca.pem, server.pem, peer.pem and their keys) and every K3s server
(/etc/rancher/k3s/etcd: ca.pem, client.pem, client-key.pem), and the certificate each member
serves on its client and peer URL (a TLS handshake without a client certificate). Per host a
table: file, subject CN, expiry, days left, whether it is the workspace's, whether the member
serves it, whether the key belongs to it. Keys are only checked against their certificate,
never printed or kept. Changes nothing.
Exit 1 when a certificate expires within --warn-days (default ${DEFAULT_WARN_DAYS}) or has expired,
differs from the workspace (drift), is not what the member serves (etcd re-reads its files on
every connection, so its settings name another file), a key does not match, or a host cannot
be read; the findings say what to do.

${SSH_HELP}`,
    options: { ...SSH_OPTIONS, 'warn-days': { type: 'string' } },
    async run(ctx) {
      const raw = ctx.values['warn-days'];
      const warnDays = typeof raw === 'string' ? Number(raw) : DEFAULT_WARN_DAYS;
      if (!Number.isInteger(warnDays) || warnDays < 0 || warnDays > 3650)
        throw new UsageError('--warn-days needs a whole number of days from 0 to 3650');
      const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
      const result = await checkDeployedCertificates(cluster, {
        ssh: await sshContext(ctx),
        warnDays,
      });
      if (ctx.global.json) json(ctx, { ...result, ok: result.findings.length === 0 });
      else ctx.io.out(checkText(result));
      return result.findings.length === 0 ? 0 : 1;
    },
  },
];

/** A file inside a cluster's pki dir is checked against that cluster's CA. */
async function defaultCa(ctx: RunContext, file: string): Promise<{ caFile?: string }> {
  try {
    const inv = await loadValid(ctx);
    const cluster = inv.clusters.find((c) => !relative(c.pki.dir, file).startsWith('..'));
    return cluster ? { caFile: join(cluster.pki.dir, CA_FILES.cert) } : {};
  } catch {
    return {};
  }
}
