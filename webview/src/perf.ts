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
  type PerfReclaim,
  type PerfWebviewToHost,
  PERF_RECLAIM_LABEL,
  PerfCancelCommand,
  PerfCompareCommand,
  PerfExportCommand,
  PerfReclaimCommand,
  PerfRunCommand,
} from '../../src/shared/protocol';
import { localStamp } from '../../src/shared/stamp';
import { el, icon } from './dom';

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

/** Writes/s as bars (left axis); p50 and p99 latency as lines, the slowest as dots (right axis, ms). */
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
  if (seconds.length === 0) return root;
  const at = (key: 'p50Ms' | 'p99Ms' | 'maxMs') =>
    seconds.map((s, i) => `${x(i) + bw / 2},${yL(s[key])}`).join(' ');
  // With ~150 writes in a second p99 is often that second's slowest write, so p99 and max can
  // coincide: p99 is a line, max a dot on a thin dashed line, and both stay visible on each other.
  root.append(
    svg('polyline', { points: at('maxMs'), class: 'line max' }),
    svg('polyline', { points: at('p50Ms'), class: 'line p50' }),
    svg('polyline', { points: at('p99Ms'), class: 'line p99' }),
  );
  seconds.forEach((s, i) =>
    root.append(svg('circle', { cx: x(i) + bw / 2, cy: yL(s.maxMs), r: 3, class: 'dot max' })),
  );
  return root;
}

function legend(): HTMLElement {
  const l = el('div', undefined, 'legend');
  for (const [cls, text] of [
    ['bar', 'writes/s'],
    ['p50', 'p50 latency'],
    ['p99', 'p99 latency'],
    ['max', 'slowest write (dots; on the p99 line when they are equal)'],
  ]) {
    const item = el('span', undefined, 'legend-item');
    item.append(el('span', undefined, `swatch ${cls}`), text ?? '');
    l.append(item);
  }
  return l;
}

/**
 * What the last run left in the database, until it is given back: stays in the tab (the
 * notification with the same button vanishes), and says how the compaction went.
 */
function reclaimNotice(r: PerfReclaim, post: (m: PerfWebviewToHost) => void): HTMLElement {
  const box = el('div', undefined, r.state === 'done' ? 'notice done' : 'notice');
  box.setAttribute('data-testid', 'reclaim');
  box.setAttribute('role', 'status');
  const text = el('p');
  const sign = icon(
    r.state === 'done' ? 'pass-filled' : r.state === 'running' ? 'loading' : 'database',
  );
  if (r.state === 'running') sign.setAttribute('spin', '');
  text.append(sign, ` ${r.message}`);
  box.append(text);
  if (r.state !== 'done') {
    const b = el('vscode-button', r.state === 'failed' ? 'Try Again' : PERF_RECLAIM_LABEL);
    b.setAttribute('icon', 'clear-all');
    if (r.state === 'running') b.setAttribute('disabled', '');
    b.addEventListener('click', () => post(PerfReclaimCommand.create({})));
    box.append(b);
  }
  return box;
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
  // Each label with its field, and Run with Cancel: a narrow panel wraps between groups only.
  const group = (...items: HTMLElement[]) => {
    const g = el('span', undefined, 'group');
    g.append(...items);
    return g;
  };
  form.append(
    group(el('label', 'Load'), select),
    group(el('label', 'Seconds'), duration),
    group(run, cancel),
  );
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
  if (state?.reclaim && !running) root.append(reclaimNotice(state.reclaim, post));

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
        localStamp(rep.startedAt),
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
