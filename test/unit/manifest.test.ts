import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { GENERATED, generateValidator } from '../../scripts/gen-validator';
import {
  ALL_COMMAND_IDS,
  COMMANDS,
  CONTEXT_KEYS,
  VIEW_IDS,
  type CommandKey,
} from '../../src/shared/commands';
import {
  HEALTH_PANEL_TRUST,
  WORKS_UNTRUSTED,
  healthPanelNeedsTrust,
} from '../../src/editor/untrustedCommands';
import * as protocol from '../../src/shared/protocol';
import { commandTitles } from '../../src/editor/commandTitles';
import { SETTINGS, settingId } from '../../src/editor/settings';
import { METRICS_MAINTAIN_LABEL } from '../../src/shared/protocol';
import { EXPIRY_WARNING_DAYS } from '../../src/core/pki/inspect';
import { DEFAULT_TIMEOUT_MS as ETCD_TIMEOUT_MS } from '../../src/core/etcd/client';
import { DEFAULT_CONNECT_TIMEOUT_MS } from '../../src/core/ssh/transport';
import { DEFAULT_DEFRAG_RULE } from '../../src/core/maintain/rule';
import { DEFAULT_WINDOW_MS } from '../../src/core/metrics/window';
import { ENDPOINT_HELP } from '../../src/cli/etcdTarget';

const root = join(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  publisher: string;
  main: string;
  bin: Record<string, string>;
  engines: { vscode: string };
  extensionKind: string[];
  activationEvents: string[];
  capabilities: {
    untrustedWorkspaces: {
      supported: boolean | 'limited';
      description?: string;
      restrictedConfigurations?: string[];
    };
  };
  devDependencies: Record<string, string>;
  contributes: {
    commands: Array<{ command: string; title: string; category?: string }>;
    menus: Record<string, Array<{ command: string; when?: string }>>;
    views: Record<string, Array<{ id: string }>>;
    yamlValidation: Array<{ fileMatch: string[]; url: string }>;
    viewsWelcome: Array<{ view: string; contents: string }>;
    configuration: { properties: Record<string, unknown> };
    walkthroughs: Array<{
      id: string;
      steps: Array<{
        id: string;
        description: string;
        completionEvents: string[];
        media: { markdown: string };
      }>;
    }>;
  };
};
/** Every .ts file under these folders of the repository, with its text. */
function sources(...dirs: string[]): Array<{ file: string; text: string }> {
  return dirs.flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ file: `${dir}/${f}`, text: readFileSync(join(root, dir, f), 'utf8') })),
  );
}

const wordsOf = (s: string): string[] => s.toLowerCase().split(/\s+/).filter(Boolean);

/** Word-level edit distance: how many words to add, drop or change to turn a into b. */
function wordDistance(a: string[], b: string[]): number {
  let prev = b.map((_, j) => j + 1);
  prev.unshift(0);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = row;
  }
  return prev[b.length]!;
}

/** Small words a command title leaves in lower case; any other lower-case word makes a sentence. */
const TITLE_LOWER = new Set([
  'etcd',
  'as',
  'to',
  'from',
  'on',
  'after',
  'and',
  'or',
  'of',
  'the',
  'a',
  'in',
  'for',
]);

/**
 * The manifest title a quoted phrase copies badly, if any: the same words in another case, or
 * (for a Title-Case phrase beside a title of three words or more) one word added, dropped or
 * changed. "Add etcd Member" is a drifted "Add as etcd Member"; "Moving K3s back to SQLite" is a
 * sentence, not a title.
 */
function driftedTitle(phrase: string, titles: readonly string[]): string | undefined {
  if (titles.includes(phrase)) return undefined;
  const pw = wordsOf(phrase);
  const titleCase = phrase.split(/\s+/).every((w) => /^[^a-z]/.test(w) || TITLE_LOWER.has(w));
  return titles.find((t) => {
    const d = wordDistance(pw, wordsOf(t));
    return d === 0 || (d === 1 && titleCase && pw.length >= 3 && wordsOf(t).length >= 3);
  });
}

const registrar = readFileSync(join(root, 'src/editor/commands/registerCommands.ts'), 'utf8');

describe('manifest and command table', () => {
  it('every contributed command is in the command table, and the reverse', () => {
    const contributed = pkg.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual(contributed, [...ALL_COMMAND_IDS].sort());
  });

  it('the registrar has a handler for every command key', () => {
    for (const key of Object.keys(COMMANDS))
      assert.match(registrar, new RegExp(`\\b${key}: \\w+\\(`), key);
  });

  it('every command has a category and a title; ids follow k3sEtcd.<area>.<verb>', () => {
    for (const c of pkg.contributes.commands) {
      assert.equal(c.category, 'K3s etcd', c.command);
      assert.ok(c.title.length > 0);
      assert.match(c.command, /^k3sEtcd\.[a-z][a-z0-9]*\.[a-z][A-Za-z]+$/);
    }
  });

  it('menus and welcome links only name contributed commands', () => {
    const ids = new Set<string>(ALL_COMMAND_IDS);
    for (const [menu, entries] of Object.entries(pkg.contributes.menus)) {
      for (const e of entries) assert.ok(ids.has(e.command), `${menu}: ${e.command}`);
    }
    for (const w of pkg.contributes.viewsWelcome) {
      for (const m of w.contents.matchAll(/command:([\w.]+)/g)) {
        assert.ok(ids.has(m[1]!) || m[1]!.startsWith('workbench.'), m[1]);
      }
    }
    // The walkthrough: every step's button and completion event names a contributed command,
    // and its media file ships (.vscodeignore brings media/walkthrough back).
    const steps = pkg.contributes.walkthroughs.flatMap((w) => w.steps);
    assert.ok(steps.length >= 8);
    for (const st of steps) {
      const used = [
        ...st.description.matchAll(/command:([\w.]+)/g),
        ...st.completionEvents.flatMap((e) => [...e.matchAll(/onCommand:([\w.]+)/g)]),
      ].map((m) => m[1]!);
      assert.ok(used.length >= 2, st.id);
      for (const id of used) assert.ok(ids.has(id), `${st.id}: ${id}`);
      assert.ok(existsSync(join(root, st.media.markdown)), st.media.markdown);
    }
  });

  it('Restricted Mode: limited support, and every setting that acts on its own is restricted', () => {
    const untrusted = pkg.capabilities.untrustedWorkspaces;
    assert.equal(untrusted.supported, 'limited');
    assert.match(untrusted.description ?? '', /nothing connects/);
    const settings = Object.keys(pkg.contributes.configuration.properties);
    const restricted = untrusted.restrictedConfigurations ?? [];
    // Each name is a real setting (a typo would silently restrict nothing).
    for (const name of restricted) assert.ok(settings.includes(name), `${name} is not a setting`);
    assert.equal(new Set(restricted).size, restricted.length, 'listed once each');
    // Intervals make the extension connect on its own; paths and binaries choose what it reads
    // or runs: a workspace must not set them before it is trusted.
    const acting = settings.filter((s) => /interval|path|binary|command|executable/i.test(s));
    assert.deepEqual(
      acting.filter((s) => !restricted.includes(s)),
      [],
      'settings that act on their own but are not in restrictedConfigurations',
    );
    assert.ok(restricted.includes('k3sEtcd.snapshot.intervalMinutes'));
  });

  it("Restricted Mode: the tree's menus offer only what works there", () => {
    const keyOf = new Map<string, string>(Object.entries(COMMANDS).map(([k, id]) => [id, k]));
    const offered: string[] = [];
    for (const place of ['view/title', 'view/item/context']) {
      for (const e of pkg.contributes.menus[place] ?? []) {
        const key = keyOf.get(e.command) as CommandKey | undefined;
        assert.ok(key, e.command);
        const trustedOnly = /(^|&& )isWorkspaceTrusted( &&|$)/.test(e.when ?? '');
        if (WORKS_UNTRUSTED.has(key))
          assert.ok(!trustedOnly, `${e.command} works untrusted: offer it there too`);
        else if (!trustedOnly) offered.push(`${place}: ${e.command}`);
      }
    }
    // The palette keeps them: run there, each says why it refuses and offers the trust editor.
    assert.deepEqual(offered, [], 'menu items that need trust but show in Restricted Mode');
  });

  it('Restricted Mode: the health panel refuses every message that connects or runs something', () => {
    const ask = (method: string) => healthPanelNeedsTrust({ method, params: {} });
    for (const m of [
      protocol.PerfRunCommand,
      protocol.PerfReclaimCommand,
      protocol.KeyspaceScanCommand,
      protocol.KeyspaceShowKeyCommand,
      protocol.HealthOpenCliCommand,
      protocol.HealthRefreshCommand,
      protocol.MetricsRefreshCommand,
      protocol.MetricsMaintainCommand,
      protocol.HealthProvisionCommand,
      protocol.HealthPreviewPlanCommand,
      protocol.HealthGenerateCertsCommand,
      protocol.HealthShowBackupsCommand,
    ])
      assert.ok(ask(m.method), `${m.method} needs trust`);
    assert.equal(ask(protocol.PerfRunCommand.method), 'A performance check');
    assert.equal(ask(protocol.HealthOpenCliCommand.method), 'Opening the CLI in a terminal');
    // Showing, copying and stopping what is there work untrusted.
    for (const m of [
      protocol.HealthReadyCommand,
      protocol.HealthCopyCommand,
      protocol.PerfCancelCommand,
      protocol.KeyspaceCancelCommand,
    ])
      assert.equal(ask(m.method), undefined, m.method);
    for (const odd of [undefined, null, 'perf/run', { method: 'toString' }, { method: 7 }])
      assert.equal(healthPanelNeedsTrust(odd), undefined);
    // Every message the panel's webview can send is decided (a new one is not left out).
    const panelCommands = (Object.values(protocol) as unknown[])
      .map((v) => (typeof v === 'object' && v !== null ? (v as { method?: unknown }).method : ''))
      .filter((m): m is string => typeof m === 'string')
      .filter((m) => /^(health|perf|metrics|keyspace)\/(?!didChange)/.test(m));
    assert.deepEqual(panelCommands.sort(), Object.keys(HEALTH_PANEL_TRUST).sort());
  });

  it('command titles exist once, in the manifest: messages take them from there', () => {
    const titles = commandTitles(pkg);
    for (const c of pkg.contributes.commands) {
      const key = (Object.keys(COMMANDS) as Array<keyof typeof COMMANDS>).find(
        (k) => COMMANDS[k] === c.command,
      );
      assert.ok(key, c.command);
      assert.equal(titles[key], c.title.replace(/…$/, ''), c.command);
    }
    // No second table of titles anywhere in the extension's code.
    const files = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(root, 'src', f));
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      assert.doesNotMatch(text, /\binventoryCreate: '(?!k3sEtcd\.)/, `${f} keeps its own titles`);
    }
  });

  it('text that names a command spells its manifest title: no drifted copy in src/ or webview/src/', () => {
    const titles = pkg.contributes.commands.map((c) => c.title.replace(/…$/, ''));
    const drifted: string[] = [];
    for (const { file, text } of sources('src', 'webview/src'))
      for (const m of text.matchAll(/(["'`“])([A-Z][^"'`“”\n]{2,60}?)(?:…|\.\.\.)?(?:\1|”)/g)) {
        const near = driftedTitle(m[2]!, titles);
        if (near) drifted.push(`${file}: "${m[2]}" is not the title "${near}"`);
      }
    assert.deepEqual(drifted, []);
    // The scan itself: the drift #18 found is caught, a sentence or another title is not.
    assert.equal(driftedTitle('Add etcd Member', titles), 'Add as etcd Member');
    assert.equal(driftedTitle('show backup status', titles), 'Show Backup Status');
    assert.equal(driftedTitle('Moving K3s back to SQLite', titles), undefined);
    assert.equal(driftedTitle('Remove etcd Member', titles), undefined);
  });

  it("the panels' buttons that run a command carry its manifest title word for word", () => {
    const byId = new Map(pkg.contributes.commands.map((c) => [c.command, c.title]));
    const title = (key: CommandKey) => byId.get(COMMANDS[key])!.replace(/…$/, '');
    const buttons: Array<[string, CommandKey[]]> = [
      ['webview/src/health.ts', ['provisionEtcd', 'provisionPreview', 'backupStatus']],
      ['webview/src/status.ts', ['provisionEtcd']],
    ];
    for (const [file, keys] of buttons) {
      const text = readFileSync(join(root, file), 'utf8');
      // The label as written, whatever the line breaks after `button(`.
      const labels = [...text.matchAll(/\bbutton\(\s*'([^'\n]+)'/g)].map((m) => m[1]);
      for (const key of keys) assert.ok(labels.includes(title(key)), `${file}: ${key}`);
    }
    // The Metrics panel's action keeps the ellipsis: it asks for more, as the command does.
    assert.equal(METRICS_MAINTAIN_LABEL, byId.get(COMMANDS.maintain));
  });

  it("every setting is read through one typed table whose defaults are the manifest's", () => {
    const props = pkg.contributes.configuration.properties as Record<string, { default: unknown }>;
    const typed = Object.fromEntries(
      (Object.keys(SETTINGS) as Array<keyof typeof SETTINGS>).map((n) => [
        settingId(n),
        SETTINGS[n].default,
      ]),
    );
    assert.deepEqual(
      Object.keys(typed).sort(),
      Object.keys(props).sort(),
      'the same settings in both',
    );
    for (const [id, def] of Object.entries(typed)) assert.equal(def, props[id]?.default, id);
    // Nothing reads a setting around the table.
    const editor = readdirSync(join(root, 'src', 'editor'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && f !== 'config.ts')
      .map((f) => join(root, 'src', 'editor', f));
    for (const f of editor)
      assert.doesNotMatch(
        readFileSync(f, 'utf8'),
        /getConfiguration\(/,
        `${f} reads settings itself`,
      );
  });

  it("a setting's default that the core also applies is the core's constant, in the manifest and the CLI's help", () => {
    const props = pkg.contributes.configuration.properties as Record<string, { default: unknown }>;
    const core: Record<string, number> = {
      'k3sEtcd.certificates.warnDays': EXPIRY_WARNING_DAYS,
      'k3sEtcd.health.timeoutMs': ETCD_TIMEOUT_MS,
      'k3sEtcd.ssh.connectTimeoutSeconds': DEFAULT_CONNECT_TIMEOUT_MS / 1000,
      'k3sEtcd.metrics.windowMinutes': DEFAULT_WINDOW_MS / 60_000,
      'k3sEtcd.maintain.freeShare': DEFAULT_DEFRAG_RULE.freeShare,
      'k3sEtcd.maintain.minSizeMiB': DEFAULT_DEFRAG_RULE.minDbBytes / (1024 * 1024),
      'k3sEtcd.maintain.quotaShare': DEFAULT_DEFRAG_RULE.quotaShare,
      'k3sEtcd.maintain.recentRevisions': DEFAULT_DEFRAG_RULE.recentRevisions,
    };
    for (const [id, value] of Object.entries(core)) assert.equal(props[id]?.default, value, id);
    assert.match(
      ENDPOINT_HELP,
      new RegExp(`--timeout MS per request \\(default ${ETCD_TIMEOUT_MS}\\)`),
    );
  });

  it('view ids and context keys used in code match the manifest', () => {
    const views = Object.values(pkg.contributes.views)
      .flat()
      .map((v) => v.id);
    assert.ok(views.includes(VIEW_IDS.clusters));
    const whens = JSON.stringify(pkg.contributes);
    assert.ok(whens.includes(CONTEXT_KEYS.inventoryPresent));
  });

  it('activation is lazy, the kind runs on the remote host first, engines match the VS Code we test on', () => {
    assert.deepEqual(pkg.activationEvents, ['workspaceContains:k3s-etcd.yaml']);
    assert.deepEqual(pkg.extensionKind, ['workspace', 'ui']);
    assert.equal(pkg.engines.vscode, '^1.100.0');
    assert.equal(pkg.devDependencies['@types/vscode'], '1.100.0');
    assert.equal(pkg.main, './dist/extension.js');
    assert.deepEqual(pkg.bin, { 'k3s-etcd': 'dist/cli.js' });
  });

  it('the schema contributed for YAML validation is the one the core validates with (generated code is fresh)', () => {
    const entry = pkg.contributes.yamlValidation[0];
    assert.ok(entry?.fileMatch.includes('k3s-etcd.yaml'));
    assert.equal(entry?.url, './schemas/k3s-etcd.schema.json');
    assert.equal(
      readFileSync(GENERATED, 'utf8'),
      generateValidator(),
      'src/core/inventory/generated/inventoryValidator.js is stale: run `npm run gen:validator`',
    );
  });
});
