/** Tiny DOM helpers shared by the webviews (no inline styles: the CSP forbids them). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  cls?: string,
): HTMLElementTagNameMap[K];
export function el(tag: string, text?: string, cls?: string): HTMLElement;
export function el(tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

/** A codicon through vscode-elements' vscode-icon. */
export function icon(name: string): HTMLElement {
  const i = document.createElement('vscode-icon');
  i.setAttribute('name', name);
  return i;
}
