/** The panels' tables and buttons: vscode-elements buttons, tables whose rows turn into cards. */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-icon/index.js';
import { el, icon } from './dom';

export function button(
  label: string,
  codicon: string,
  onClick: () => void,
  secondary = true,
): HTMLElement {
  const b = el('vscode-button', label);
  b.setAttribute('icon', codicon);
  if (secondary) b.setAttribute('secondary', '');
  b.addEventListener('click', onClick);
  return b;
}

export function table(
  header: string[],
  rows: Array<Array<string | Node>>,
  label: string,
): HTMLTableElement {
  const t = el('table');
  t.setAttribute('aria-label', label);
  const head = el('tr');
  for (const h of header) head.append(el('th', h));
  t.append(head);
  for (const r of rows) {
    const tr = el('tr');
    r.forEach((c, i) => {
      const td = el('td');
      td.setAttribute('data-label', header[i] ?? '');
      td.append(c);
      tr.append(td);
    });
    t.append(tr);
  }
  return t;
}

/** A table that turns into a card per row when the editor is narrow (see webview.css). */
export function cards(t: HTMLTableElement): HTMLElement {
  t.classList.add('cards');
  const wrap = el('div', undefined, 'table-wrap');
  wrap.append(t);
  return wrap;
}

export function verdict(ok: boolean, text: string): HTMLElement {
  const span = el('span', undefined, ok ? 'ok nowrap' : 'bad nowrap');
  span.append(icon(ok ? 'pass-filled' : 'error'), ` ${text}`);
  return span;
}

/** A figure with a smaller, muted second line (as the Metrics table's). */
export function twoLines(text: string, sub: string | undefined): string | Node {
  if (sub === undefined) return text;
  const span = el('span', text, 'nowrap');
  span.append(el('span', sub, 'sub'));
  return span;
}
