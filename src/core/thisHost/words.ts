/** Where each host's steps run, in words for the previews of both ways of working. */
import type { ThisHostDecision } from './identity';

/**
 * One line per way: the host this window runs on (its terminal, sudo asking there) and the
 * others (over SSH from it, or from this machine), then why the decision went as it did.
 */
export function placementLines(hosts: readonly string[], d: ThisHostDecision): string[] {
  const here = d.local && hosts.includes(d.local) ? d.local : undefined;
  const others = hosts.filter((h) => h !== here);
  return [
    ...(here
      ? [
          `${here}: here, in this window's terminal, as root through sudo (sudo asks for your password there; it is not stored)`,
        ]
      : []),
    ...(others.length
      ? [
          d.local
            ? `${others.join(', ')}: over SSH from ${d.local} (the inventory's keys and known_hosts, else those in ~/.ssh of this user there)`
            : `${others.join(', ')}: over SSH from this machine`,
        ]
      : []),
    ...hosts.filter((h) => d.reasons[h]).map((h) => `  ${h}: ${d.reasons[h]}`),
  ];
}
