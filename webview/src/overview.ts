/** Browser side of the "Cluster overview" panel. Plain DOM, VS Code theme variables. */
import {
  OpenInventoryCommand,
  ReadyCommand,
  StateNotification,
  type OverviewState,
  type WebviewToHost,
} from '../../src/shared/protocol';

interface VsCodeApi {
  postMessage(msg: WebviewToHost): void;
  getState(): OverviewState | undefined;
  setState(state: OverviewState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const app = document.getElementById('app') as HTMLElement;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  cls?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function render(state: OverviewState): void {
  app.replaceChildren();
  const h1 = el('h1', state.cluster);
  app.append(h1);
  if (state.datastore) {
    app.append(
      el(
        'p',
        `${state.datastore} · etcd ${state.etcdVersion} · certificates in ${state.pkiDir}`,
        'muted',
      ),
    );
  }
  if (state.problems.length) {
    const list = el('ul', undefined, 'problems');
    for (const p of state.problems) list.append(el('li', p));
    app.append(el('h2', 'Inventory problems'), list);
  }
  const table = el('table');
  const head = el('tr');
  for (const h of ['Host', 'SSH', 'Roles', 'Client URL', 'Peer URL']) head.append(el('th', h));
  table.append(head);
  for (const host of state.hosts) {
    const row = el('tr');
    const name = el('td');
    const link = el('a', host.name);
    link.href = '#';
    link.addEventListener('click', (ev) => {
      ev.preventDefault();
      vscode.postMessage(OpenInventoryCommand.create({ host: host.name }));
    });
    name.append(link);
    row.append(
      name,
      el('td', host.sshTarget),
      el('td', host.roles.join(', ')),
      el('td', host.clientUrl ?? '—'),
      el('td', host.peerUrl ?? '—'),
    );
    table.append(row);
  }
  app.append(table);
}

window.addEventListener('message', (ev: MessageEvent<unknown>) => {
  if (StateNotification.is(ev.data)) {
    vscode.setState(ev.data.params);
    render(ev.data.params);
  }
});

const saved = vscode.getState();
if (saved) render(saved);
vscode.postMessage(ReadyCommand.create({}));
