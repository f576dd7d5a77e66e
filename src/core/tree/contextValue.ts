/**
 * `contextValue` grammar for tree items: `<kind>` followed by `+flag` tokens in a fixed order,
 * e.g. `member+leader`, `cluster+external-etcd+unprovisioned`, `problem+error`,
 * `backups+warning`. Menus match it with `viewItem =~ /^member\b.*\+leader/`. Built in exactly
 * one place, from node state.
 */
export type ContextKind =
  | 'cluster'
  | 'host'
  | 'member'
  | 'k3sServer'
  | 'k3sAgent'
  | 'problem'
  | 'certificates'
  | 'certificate'
  | 'backups'
  | 'trust';

export type ContextFlag =
  | 'external-etcd'
  | 'embedded-etcd'
  | 'etcd'
  | 'k3s-server'
  | 'leader'
  | 'learner'
  | 'unhealthy'
  | 'unprovisioned'
  | 'nospace'
  | 'backup'
  | 'error'
  | 'warning'
  | 'ca'
  | 'missing'
  | 'expiring'
  | 'expired'
  | 'rotating';

/** Flags appear in this order, so equal states give equal strings. */
const FLAG_ORDER: readonly ContextFlag[] = [
  'external-etcd',
  'embedded-etcd',
  'etcd',
  'k3s-server',
  'leader',
  'learner',
  'unhealthy',
  'unprovisioned',
  'nospace',
  'backup',
  'error',
  'warning',
  'ca',
  'missing',
  'expiring',
  'expired',
  'rotating',
];

export function formatContextValue(kind: ContextKind, flags: Iterable<ContextFlag> = []): string {
  const set = new Set(flags);
  return [kind, ...FLAG_ORDER.filter((f) => set.has(f))].join('+');
}

export function parseContextValue(value: string): { kind: ContextKind; flags: Set<ContextFlag> } {
  const [kind, ...flags] = value.split('+');
  if (!kind || !isKind(kind)) throw new Error(`not a k3s-etcd context value: ${value}`);
  const out = new Set<ContextFlag>();
  for (const f of flags) {
    if (!(FLAG_ORDER as readonly string[]).includes(f))
      throw new Error(`unknown flag "${f}" in ${value}`);
    out.add(f as ContextFlag);
  }
  return { kind, flags: out };
}

const KINDS: readonly ContextKind[] = [
  'cluster',
  'host',
  'member',
  'k3sServer',
  'k3sAgent',
  'problem',
  'certificates',
  'certificate',
  'backups',
  'trust',
];
function isKind(k: string): k is ContextKind {
  return (KINDS as readonly string[]).includes(k);
}
