/**
 * One file per operation, with the same name in both front ends: the CLI's subcommands of an
 * operation live in src/cli/<op>.ts, the editor's commands of it in src/editor/commands/<op>.ts.
 * The table below says which operation each subcommand and each command belongs to; every one of
 * them must be in it, so a new command is filed on purpose.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import type { Subcommand } from '../../src/cli/context';
import { COMMANDS, type CommandKey } from '../../src/shared/commands';

const root = join(__dirname, '../..');

/** Operations both front ends have: the CLI's subcommands and the editor's command keys. */
const PAIRED: Record<string, { cli: string[]; editor: CommandKey[] }> = {
  inventory: {
    cli: ['inventory validate', 'inventory show', 'inventory init'],
    editor: [
      'inventoryCreate',
      'inventoryOpen',
      'inventoryValidate',
      'problemReveal',
      'clusterOpenPanel',
    ],
  },
  health: { cli: ['health', 'status', 'members'], editor: ['clusterOpenHealth'] },
  certs: {
    cli: ['certs generate', 'certs reissue', 'certs import-ca', 'certs inspect', 'certs check'],
    editor: ['certsGenerate', 'certsInspect', 'certsImportCa', 'certsReissue', 'certsCheck'],
  },
  provision: { cli: ['provision etcd'], editor: ['provisionEtcd', 'provisionPreview'] },
  upgrade: { cli: ['upgrade'], editor: ['upgradeEtcd'] },
  member: {
    cli: ['member add', 'member remove', 'member replace'],
    editor: ['memberAdd', 'memberRemove', 'memberReplace'],
  },
  repair: { cli: ['member fix-peer-url'], editor: ['memberFixPeerUrl'] },
  renew: { cli: ['certs renew'], editor: ['certsRenew'] },
  rotate: { cli: ['certs rotate-ca'], editor: ['certsRotateCa'] },
  k3s: {
    cli: ['k3s install', 'k3s backup', 'k3s restore', 'k3s kubeconfig'],
    editor: [
      'k3sInstall',
      'k3sPreview',
      'k3sBackup',
      'k3sRestore',
      'k3sFetchKubeconfig',
      'k3sRefreshState',
    ],
  },
  etcdctl: { cli: ['etcdctl-env'], editor: ['etcdctlOpenTerminal', 'etcdctlCopyEnv'] },
  migrate: {
    cli: ['migrate sqlite-to-etcd', 'migrate etcd-to-sqlite', 'migrate embedded-to-external'],
    editor: ['migrateSqliteToEtcd', 'migrateEtcdToSqlite'],
  },
  maintain: { cli: ['maintain'], editor: ['maintain', 'scheduleMaintenance'] },
  snapshot: { cli: ['snapshot save', 'snapshot list'], editor: ['snapshotSave', 'snapshotList'] },
  restore: { cli: ['snapshot restore-commands', 'snapshot restore'], editor: ['snapshotRestore'] },
  keyspace: { cli: ['keyspace'], editor: ['keyspaceShowKey'] },
  recover: { cli: ['recover'], editor: ['clusterRecover'] },
  monitoring: { cli: ['monitoring export'], editor: ['monitoringExport'] },
  backup: {
    cli: [
      'backup install',
      'backup run',
      'backup status',
      'backup keygen',
      'backup drill',
      'backup fetch',
    ],
    editor: [
      'backupInstall',
      'backupRemove',
      'backupKeygen',
      'backupRun',
      'backupStatus',
      'backupRefresh',
    ],
  },
};
/** Operations only the CLI has. */
const CLI_ONLY: Record<string, string[]> = {
  perf: ['perf'],
  metrics: ['metrics'],
};
/** Editor commands with no CLI counterpart, and their file. */
const EDITOR_ONLY: Record<string, CommandKey[]> = {
  misc: ['treeRefresh', 'hostCopyAddress', 'docsOpen', 'logShow'],
};

const isSubcommands = (v: unknown): v is Subcommand[] =>
  Array.isArray(v) &&
  v.length > 0 &&
  v.every(
    (s) =>
      typeof (s as Subcommand).name === 'string' && typeof (s as Subcommand).run === 'function',
  );

/** src/cli/<file>.ts → the names of the subcommands it exports. */
async function cliFiles(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const f of readdirSync(join(root, 'src/cli')).filter((n) => n.endsWith('.ts'))) {
    const mod = (await import(join(root, 'src/cli', f))) as Record<string, unknown>;
    const names = Object.values(mod)
      .filter(isSubcommands)
      .flatMap((list) => list.map((s) => s.name));
    if (names.length > 0) out.set(basename(f, '.ts'), names);
  }
  return out;
}

/** Command key → the file of src/editor/commands/ its handler comes from (registerCommands.ts). */
function editorFiles(): Map<CommandKey, string> {
  const src = readFileSync(join(root, 'src/editor/commands/registerCommands.ts'), 'utf8');
  const fileOf = new Map<string, string>();
  for (const m of src.matchAll(/import \{([^}]*)\} from '\.\/(\w+)';/g))
    for (const name of m[1]!
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean))
      fileOf.set(name, m[2]!);
  const out = new Map<CommandKey, string>();
  for (const m of src.matchAll(/\b(\w+): (\w+)\(/g)) {
    const file = fileOf.get(m[2]!);
    if (file && m[1]! in COMMANDS) out.set(m[1] as CommandKey, file);
  }
  return out;
}

describe('one file per operation in both front ends', () => {
  it('every CLI subcommand is in src/cli/<op>.ts of its operation', async () => {
    const files = await cliFiles();
    const want = new Map<string, string>();
    // Each subcommand listed once: paired with its editor command, or CLI-only, never both.
    const list = (n: string, op: string, table: string) => {
      assert.ok(!want.has(n), `"${n}" is listed twice (again in ${table}.${op})`);
      want.set(n, op);
    };
    for (const [op, { cli }] of Object.entries(PAIRED)) for (const n of cli) list(n, op, 'PAIRED');
    for (const [op, cli] of Object.entries(CLI_ONLY)) for (const n of cli) list(n, op, 'CLI_ONLY');
    const seen = new Set<string>();
    for (const [file, names] of files) {
      for (const name of names) {
        assert.ok(want.has(name), `"${name}" (src/cli/${file}.ts) is in no operation of this test`);
        assert.equal(file, want.get(name), `"${name}" belongs in src/cli/${want.get(name)}.ts`);
        seen.add(name);
      }
    }
    assert.deepEqual(
      [...want.keys()].filter((n) => !seen.has(n)),
      [],
      'subcommands not found',
    );
  });

  it('every editor command is in src/editor/commands/<op>.ts, named like the CLI file', () => {
    const files = editorFiles();
    const want = new Map<CommandKey, string>();
    for (const [op, { editor }] of Object.entries(PAIRED)) for (const k of editor) want.set(k, op);
    for (const [file, keys] of Object.entries(EDITOR_ONLY)) for (const k of keys) want.set(k, file);
    for (const key of Object.keys(COMMANDS) as CommandKey[]) {
      assert.ok(want.has(key), `command ${key} is in no operation of this test`);
      assert.equal(files.get(key), want.get(key), `${key} belongs in commands/${want.get(key)}.ts`);
    }
  });

  it('an editor commands file with a CLI counterpart has the same base name', () => {
    const editorOps = new Set(
      readdirSync(join(root, 'src/editor/commands'))
        .filter((n) => n.endsWith('.ts') && n !== 'registerCommands.ts')
        .map((n) => basename(n, '.ts')),
    );
    for (const op of Object.keys(PAIRED)) {
      assert.ok(editorOps.has(op), `src/editor/commands/${op}.ts`);
      assert.ok(existsSync(join(root, 'src/cli', `${op}.ts`)), `src/cli/${op}.ts`);
    }
    for (const op of editorOps)
      assert.ok(op in PAIRED || op in EDITOR_ONLY, `commands/${op}.ts is in no operation`);
  });
});
