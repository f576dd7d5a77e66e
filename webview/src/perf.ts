/**
 * The Performance tab: run `check perf` with a load profile, live progress and a chart of
 * writes/s and latency per second (plain SVG, no script-injected styles), etcdctl's verdict lines
 * at the end, and past runs with export and side-by-side comparison.
 */
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import type { PerfLoad, PerfProgress } from '../../src/shared/perfTypes';
import {
  type PerfPanelState,
  type PerfWebviewToHost,
  PerfCancelCommand,
  PerfCompareCommand,
  PerfExportCommand,
  PerfRunCommand,
} from '../../src/shared/protocol';
import { el } from './dom';

const SVG = 'http://www.w3.org/2000/svg';
const TARGETS: Record<PerfLoad, number> = { s: 150, m: 1000, l: 8000, xl: 15000 };

export interface PerfUiState {
  load: PerfLoad;
  durationSec: number;
  selected: string[];
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Writes/s as bars (left axis) and p50/p99/max latency as lines (right axis, ms). */
export function chart(
  seconds: readonly PerfProgress[],
  target: number,
  totalSec: number,
): SVGSVGElement {
  const W = 720;
  const H = 220;
  const pad = { l: 48, r: 52, t: 12, b: 28 };
  const w = W - pad.l - pad.r;
  const h = H - pad.t - pad.b;
  const n = Math.max(totalSec, seconds.length, 1);
  const maxWrites = Math.max(target * 1.1, ...seconds.map((s) => s.writes), 1);
  const maxMs = Math.max(10, ...seconds.map((s) => s.maxMs));
  const x = (i: number) => pad.l + (i / n) * w;
  const yW = (v: number) => pad.t + h - (v / maxWrites) * h;
  const yL = (v: number) => pad.t + h - (v / maxMs) * h;
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': 'writes per second and latency per second',
    class: 'chart',
  });
  root.append(
    svg('line', { x1: pad.l, y1: pad.t + h, x2: pad.l + w, y2: pad.t + h, class: 'axis' }),
  );
  root.append(svg('text', { x: 4, y: pad.t + 10, class: 'label' }, `${Math.round(maxWrites)}/s`));
  root.append(
    svg('text', { x: W - pad.r + 4, y: pad.t + 10, class: 'label' }, `${maxMs.toFixed(0)} ms`),
  );
  root.append(svg('text', { x: pad.l, y: H - 8, class: 'label' }, '0 s'));
  root.append(svg('text', { x: pad.l + w - 24, y: H - 8, class: 'label' }, `${n} s`));
  root.append(
    svg('line', { x1: pad.l, y1: yW(target), x2: pad.l + w, y2: yW(target), class: 'target' }),
  );
  root.append(
    svg('text', { x: pad.l + 4, y: yW(target) - 4, class: 'label' }, `target ${target}/s`),
  );
  const bw = Math.max(1, w / n - 1);
  seconds.forEach((s, i) =>
    root.append(
      svg('rect', {
        x: x(i),
        y: yW(s.writes),
        width: bw,
        height: pad.t + h - yW(s.writes),
        class: 'bar',
      }),
    ),
  );
  for (const [key, cls] of [
    ['p50Ms', 'p50'],
    ['p99Ms', 'p99'],
    ['maxMs', 'max'],
  ] as const) {
    if (seconds.length === 0) continue;
    const points = seconds.map((s, i) => `${x(i) + bw / 2},${yL(s[key])}`).join(' ');
    root.append(svg('polyline', { points, class: `line ${cls}` }));
  }
  return root;
}

function legend(): HTMLElement {
  const l = el('div', undefined, 'legend');
  for (const [cls, text] of [
    ['bar', 'writes/s'],
    ['p50', 'p50'],
    ['p99', 'p99'],
    ['max', 'max latency'],
  ]) {
    const item = el('span', undefined, 'legend-item');
    item.append(el('span', undefined, `swatch ${cls}`), text ?? '');
    l.append(item);
  }
  return l;
}

function fmtTime(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function perfTab(
  state: PerfPanelState | undefined,
  ui: PerfUiState,
  post: (m: PerfWebviewToHost) => void,
  save: (ui: PerfUiState) => void,
): HTMLElement {
  const root = el('div', undefined, 'perf');
  const form = el('div', undefined, 'form');
  const select = el('vscode-single-select') as HTMLElement & { value: string };
  select.setAttribute('aria-label', 'load profile');
  for (const [v, label] of [
    ['s', 's: 50 clients, 150 writes/s'],
    ['m', 'm: 200 clients, 1000 writes/s'],
    ['l', 'l: 500 clients, 8000 writes/s'],
    ['xl', 'xl: 1000 clients, 15000 writes/s'],
  ] as const) {
    const o = el('vscode-option', label);
    o.setAttribute('value', v);
    if (v === ui.load) o.setAttribute('selected', '');
    select.append(o);
  }
  select.addEventListener('change', () => save({ ...ui, load: select.value as PerfLoad }));
  const duration = el('vscode-textfield') as HTMLElement & { value: string };
  duration.setAttribute('type', 'number');
  duration.setAttribute('min', '1');
  duration.setAttribute('aria-label', 'duration in seconds');
  duration.setAttribute('value', String(ui.durationSec));
  duration.addEventListener('change', () =>
    save({ ...ui, durationSec: Math.max(1, Number(duration.value) || 60) }),
  );
  const running = state?.running;
  const run = el('vscode-button', running ? 'Running…' : 'Run check');
  run.setAttribute('icon', 'play');
  if (running) run.setAttribute('disabled', '');
  run.addEventListener('click', () =>
    post(
      PerfRunCommand.create({
        load: (select.value || ui.load) as PerfLoad,
        durationSec: Math.max(1, Number(duration.value) || ui.durationSec),
      }),
    ),
  );
  const cancel = el('vscode-button', 'Cancel');
  cancel.setAttribute('icon', 'debug-stop');
  cancel.setAttribute('secondary', '');
  if (!running) cancel.setAttribute('disabled', '');
  cancel.addEventListener('click', () => post(PerfCancelCommand.create({})));
  form.append(el('label', 'Load'), select, el('label', 'Seconds'), duration, run, cancel);
  root.append(form);

  const seconds = state?.seconds ?? [];
  const load = running?.load ?? state?.result?.load ?? ui.load;
  const totalMs = running?.totalMs ?? state?.result?.durationMs ?? ui.durationSec * 1000;
  if (running) {
    const elapsed = seconds.at(-1)?.elapsedMs ?? 0;
    const bar = el('vscode-progress-bar');
    bar.setAttribute('value', String(Math.min(100, (elapsed / totalMs) * 100)));
    bar.setAttribute('max', '100');
    root.append(
      bar,
      el(
        'p',
        running.phase === 'cleaning'
          ? 'Deleting the test keys…'
          : `${fmtTime(elapsed)} elapsed, ${fmtTime(totalMs - elapsed)} remaining · ${seconds.at(-1)?.writes ?? 0} writes/s`,
        'muted',
      ),
    );
  }
  if (seconds.length || running) {
    root.append(chart(seconds, TARGETS[load], Math.round(totalMs / 1000)), legend());
  }
  if (state?.error) root.append(el('p', state.error, 'error'));
  const r = state?.result;
  if (r && !running) {
    const pre = el(
      'pre',
      undefined,
      r.cancelled ? 'verdict' : r.pass ? 'verdict ok' : 'verdict bad',
    );
    pre.setAttribute('data-testid', 'verdict');
    pre.textContent = r.cancelled
      ? `Cancelled after ${fmtTime(seconds.at(-1)?.elapsedMs ?? 0)}; the test keys were ${r.cleanedUp ? 'deleted' : 'NOT deleted'}.`
      : [
          ...r.lines,
          `(${r.rps.toFixed(0)} writes/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; test keys ${r.cleanedUp ? 'deleted' : 'NOT deleted'})`,
        ].join('\n');
    root.append(pre);
  }

  const reports = state?.reports ?? [];
  if (reports.length) {
    root.append(el('h2', 'Past runs'));
    const t = el('table');
    t.setAttribute('aria-label', 'past runs');
    const head = el('tr');
    for (const h of ['', 'Date', 'Load', 'Verdict', 'Writes/s', '']) head.append(el('th', h));
    t.append(head);
    for (const rep of reports) {
      const tr = el('tr');
      const pick = el('vscode-checkbox');
      pick.setAttribute('aria-label', `select ${rep.file}`);
      if (ui.selected.includes(rep.file)) pick.setAttribute('checked', '');
      pick.addEventListener('change', () => {
        const sel = ui.selected.includes(rep.file)
          ? ui.selected.filter((f) => f !== rep.file)
          : [...ui.selected, rep.file].slice(-2);
        save({ ...ui, selected: sel });
      });
      const exp = el('vscode-button', 'Export');
      exp.setAttribute('secondary', '');
      exp.setAttribute('icon', 'markdown');
      exp.addEventListener('click', () => post(PerfExportCommand.create({ file: rep.file })));
      const cells: Array<Node | string> = [
        pick,
        new Date(rep.startedAt).toLocaleString(),
        rep.load,
        rep.verdict,
        `${rep.rps.toFixed(0)} / ${rep.target}`,
        exp,
      ];
      for (const c of cells) {
        const td = el('td');
        td.append(c);
        tr.append(td);
      }
      t.append(tr);
    }
    root.append(t);
    const compare = el('vscode-button', 'Compare selected');
    compare.setAttribute('icon', 'diff');
    if (ui.selected.length !== 2) compare.setAttribute('disabled', '');
    compare.addEventListener('click', () => {
      const [a, b] = ui.selected;
      if (a && b) post(PerfCompareCommand.create({ a, b }));
    });
    root.append(compare);
  }
  return root;
}
