/**
 * Browser side of the "etcd health" panel: tabs with the Health, Status and Members tables in
 * etcdctl's columns, built from @vscode-elements web components and VS Code theme variables.
 */
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-icon/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import type { ClusterSnapshot } from '../../src/shared/etcdTypes';
import { localStamp } from '../../src/shared/stamp';
import {
  HealthCopyCommand,
  HealthGenerateCertsCommand,
  HealthOpenCliCommand,
  HealthPreviewPlanCommand,
  HealthShowBackupsCommand,
  HealthProvisionCommand,
  HealthReadSettingsCommand,
  HealthReadyCommand,
  HealthRefreshCommand,
  HealthStateNotification,
  KeyspaceScanCommand,
  KeyspaceStateNotification,
  METRICS_MAINTAIN_LABEL,
  MetricsMaintainCommand,
  MetricsStateNotification,
  PerfStateNotification,
  type HealthPanelState,
  type HealthSection,
  type HealthWebviewToHost,
  type KeyspaceTabState,
  type KeyspaceWebviewToHost,
  type MetricsPanelState,
  type MetricsWebviewToHost,
  type PerfPanelState,
  type PerfWebviewToHost,
} from '../../src/shared/protocol';
import { el, icon } from './dom';
import { keyspaceTab } from './keyspace';
import { metricsTab } from './metrics';
import { perfTab, type PerfUiState } from './perf';
import { endpointCell, statusTab } from './status';
import { button, table, verdict } from './tables';

interface SavedState {
  panel?: HealthPanelState;
  perf?: PerfPanelState;
  perfUi?: PerfUiState;
  metrics?: MetricsPanelState;
  keyspace?: KeyspaceTabState;
  tab: number;
}

interface VsCodeApi {
  postMessage(
    msg: HealthWebviewToHost | PerfWebviewToHost | MetricsWebviewToHost | KeyspaceWebviewToHost,
  ): void;
  getState(): SavedState | undefined;
  setState(state: SavedState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const app = document.getElementById('app') as HTMLElement;
let saved: SavedState = vscode.getState() ?? { tab: 0 };

const SECTIONS: HealthSection[] = ['health', 'status', 'members'];
const KEYSPACE_TAB = 5;
let keyspaceAsked = false;

/** The Keyspace tab scans when it is opened and has nothing yet (never on a timer). */
function scanIfEmpty(tab: number): void {
  const k = saved.keyspace;
  if (tab === KEYSPACE_TAB && !k?.report && !k?.running && !k?.error)
    vscode.postMessage(KeyspaceScanCommand.create({}));
}

function healthTab(s: HealthPanelState, snap: ClusterSnapshot): HTMLElement {
  // Not provisioned yet: what each address says, in the neutral colour (nothing is broken).
  const neutral = (text: string) => {
    const span = el('span', undefined, 'muted');
    span.append(icon('circle-large-outline'), ` ${text}`);
    return span;
  };
  return table(
    ['Endpoint', 'Health', 'Took', s.notProvisioned ? 'Answer' : 'Error'],
    snap.health.map((r) => [
      endpointCell(s, r.endpoint),
      s.notProvisioned ? neutral('not provisioned yet') : verdict(r.health, String(r.health)),
      el('span', `${r.tookMs.toFixed(1)} ms`, 'nowrap'),
      r.problem
        ? s.notProvisioned
          ? r.problem.summary
          : `${r.problem.summary}. ${r.problem.hint}`
        : '',
    ]),
    'endpoint health',
  );
}

/**
 * The notice a cluster nothing answers and nobody provisioned here gets instead of red: a fact
 * once every member host was read without etcd's unit, otherwise what this workspace knows, with
 * what the hosts said (or why that is not known) below.
 */
function notProvisionedNotice(look: HealthPanelState['unitLook']): HTMLElement {
  const box = el('div', undefined, 'notice neutral');
  box.setAttribute('data-testid', 'not-provisioned');
  const then =
    'Provision etcd installs and starts it on every member; Preview Provisioning Plan shows what that would do first.';
  box.append(
    el(
      'p',
      look?.confirmed
        ? `Not provisioned yet: nothing answers and no member host has etcd's unit. ${then}`
        : `Not provisioned yet: nothing answers and this workspace has not provisioned it. ${then}`,
    ),
  );
  if (look) {
    const words = el('p', look.words, 'muted');
    words.setAttribute('data-testid', 'unit-look');
    box.append(words);
  }
  const row = el('div', undefined, 'actions-row');
  row.append(
    button(
      'Provision etcd',
      'play',
      () => vscode.postMessage(HealthProvisionCommand.create({})),
      false,
    ),
    button('Preview Provisioning Plan', 'preview', () =>
      vscode.postMessage(HealthPreviewPlanCommand.create({})),
    ),
  );
  box.append(row);
  return box;
}

/**
 * The banner of an armed NOSPACE (any member's health read it): every write fails until the
 * space is reclaimed, so the rescue is one click away ("Maintain etcd…" turns into it).
 */
function nospaceBanner(snap: ClusterSnapshot): HTMLElement | undefined {
  if (!snap.health.some((r) => r.alarms.includes('NOSPACE'))) return undefined;
  const box = el('div', undefined, 'notice alarm');
  box.setAttribute('data-testid', 'nospace');
  box.setAttribute('role', 'alert');
  box.append(
    el(
      'p',
      `NOSPACE: the database hit its space quota and every write fails (K3s cannot change anything) until the space is reclaimed and the alarm disarmed. ${METRICS_MAINTAIN_LABEL} runs the rescue: what fills the space, compaction, defragmentation one member at a time, the alarm disarmed and a write that proves it.`,
    ),
  );
  const row = el('div', undefined, 'actions-row');
  row.append(
    button(
      METRICS_MAINTAIN_LABEL,
      'tools',
      () => vscode.postMessage(MetricsMaintainCommand.create({})),
      false,
    ),
  );
  box.append(row);
  return box;
}

/** The backups' freshness: a muted line when fresh or unread, a warning notice when not. */
function backupsLine(b: NonNullable<HealthPanelState['backups']>): HTMLElement {
  const show = button('Show Backup Status', 'archive', () =>
    vscode.postMessage(HealthShowBackupsCommand.create({})),
  );
  if (b.state !== 'stale') {
    const row = el('div', undefined, 'actions-row');
    row.setAttribute('data-testid', 'backups');
    row.append(el('span', `Backups: ${b.words}`, b.state === 'fresh' ? 'ok' : 'muted'), show);
    return row;
  }
  const box = el('div', undefined, 'notice');
  box.setAttribute('data-testid', 'backups');
  box.append(el('p', 'Backups are not fresh:'));
  const list = el('ul');
  for (const p of b.problems) list.append(el('li', p));
  box.append(list, show);
  return box;
}

function membersTab(s: HealthPanelState, snap: ClusterSnapshot): HTMLElement {
  if (s.notProvisioned) return el('p', 'Nothing answers yet: no member list to show.', 'muted');
  const t = table(
    ['ID', 'Status', 'Name', 'Peer addrs', 'Client addrs', 'Learner'],
    snap.members.map((m) => [
      m.id,
      m.name ? 'started' : 'unstarted',
      m.name,
      m.peerUrls.join(', '),
      m.clientUrls.join(', '),
      String(m.isLearner),
    ]),
    'member list',
  );
  if (!snap.membersProblem) return t;
  const wrap = el('div');
  wrap.append(
    el(
      'p',
      `No member answered the member list: ${snap.membersProblem.summary}. ${snap.membersProblem.hint}`,
      'error',
    ),
    t,
  );
  return wrap;
}

function render(s: HealthPanelState): void {
  app.replaceChildren();
  const header = el('header', undefined, 'bar');
  const title = el('h1', s.cluster);
  const summary = el(
    'span',
    s.notProvisioned
      ? 'not provisioned yet'
      : s.snapshot
        ? s.snapshot.summary
        : s.error
          ? ''
          : 'not asked yet',
    s.notProvisioned ? 'muted' : s.snapshot?.healthy ? 'ok' : 'bad',
  );
  summary.setAttribute('data-testid', 'summary');
  const actions = el('div', undefined, 'actions');
  const section = () => SECTIONS[Math.min(saved.tab, 2)] ?? 'health';
  actions.append(
    button('Refresh', 'refresh', () => vscode.postMessage(HealthRefreshCommand.create({})), false),
    button('Copy as Markdown', 'copy', () =>
      vscode.postMessage(HealthCopyCommand.create({ section: section() })),
    ),
    button('Open in CLI', 'terminal', () =>
      vscode.postMessage(HealthOpenCliCommand.create({ section: section() })),
    ),
  );
  if (s.refreshing) {
    const ring = el('vscode-progress-ring');
    ring.setAttribute('aria-label', 'refreshing');
    actions.prepend(ring);
  }
  header.append(title, summary, actions);
  app.append(header);

  if (s.error) {
    const box = el('div', undefined, 'notice');
    box.append(el('p', s.error.message));
    if (s.error.code === 'certs-missing') {
      box.append(
        button(
          'Generate Certificate Set',
          'shield',
          () => vscode.postMessage(HealthGenerateCertsCommand.create({})),
          false,
        ),
      );
    }
    app.append(box);
  }
  if (s.notProvisioned) app.append(notProvisionedNotice(s.unitLook));
  const snap = s.snapshot;
  const nospace = snap && nospaceBanner(snap);
  if (nospace) app.append(nospace);
  if (snap) app.append(el('p', `As of ${localStamp(snap.at)}`, 'muted'));
  if (s.backups) app.append(backupsLine(s.backups));
  const waiting = () => el('p', s.error ? 'No data.' : 'Asking the members…', 'muted');
  const perfUi = saved.perfUi ?? { load: 's', durationSec: 60, selected: [] };
  const perf = perfTab(
    saved.perf,
    perfUi,
    (m) => vscode.postMessage(m),
    (ui) => {
      saved = { ...saved, perfUi: ui };
      vscode.setState(saved);
      render(s);
    },
  );

  const tabs = el('vscode-tabs');
  tabs.setAttribute('selected-index', String(saved.tab));
  for (const [label, body] of [
    ['Health', snap ? healthTab(s, snap) : waiting()],
    [
      'Status',
      snap
        ? statusTab(
            s,
            snap,
            () => vscode.postMessage(HealthProvisionCommand.create({})),
            () => vscode.postMessage(HealthReadSettingsCommand.create({})),
          )
        : waiting(),
    ],
    ['Members', snap ? membersTab(s, snap) : waiting()],
    [
      'Metrics',
      s.notProvisioned
        ? el('p', 'Nothing answers yet: no metrics to read.', 'muted')
        : metricsTab(saved.metrics, (m) => vscode.postMessage(m)),
    ],
    ['Performance', perf],
    [
      'Keyspace',
      s.notProvisioned
        ? el('p', 'Nothing answers yet: no keyspace to read.', 'muted')
        : keyspaceTab(saved.keyspace, (m) => vscode.postMessage(m)),
    ],
  ] as const) {
    const h = el('vscode-tab-header', label);
    h.setAttribute('slot', 'header');
    const p = el('vscode-tab-panel');
    p.append(body);
    tabs.append(h, p);
  }
  tabs.addEventListener('vsc-tabs-select', (e) => {
    saved = { ...saved, tab: (e as CustomEvent<{ selectedIndex: number }>).detail.selectedIndex };
    vscode.setState(saved);
    if (!s.notProvisioned) scanIfEmpty(saved.tab);
  });
  app.append(tabs);
}

window.addEventListener('message', (ev: MessageEvent<unknown>) => {
  if (HealthStateNotification.is(ev.data)) {
    saved = { ...saved, panel: ev.data.params };
  } else if (PerfStateNotification.is(ev.data)) {
    saved = { ...saved, perf: ev.data.params };
  } else if (MetricsStateNotification.is(ev.data)) {
    saved = { ...saved, metrics: ev.data.params };
  } else if (KeyspaceStateNotification.is(ev.data)) {
    saved = { ...saved, keyspace: ev.data.params };
    // Reopened on the Keyspace tab: scan once, as if it had just been opened.
    if (!keyspaceAsked && saved.panel && !saved.panel.notProvisioned) {
      keyspaceAsked = true;
      scanIfEmpty(saved.tab);
    }
  } else {
    return;
  }
  vscode.setState(saved);
  if (saved.panel) render(saved.panel);
});

if (saved.panel) render(saved.panel);
vscode.postMessage(HealthReadyCommand.create({}));
