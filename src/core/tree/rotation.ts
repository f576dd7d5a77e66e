/**
 * An ongoing CA rotation on the Certificates node: "CA rotation: phase 2 of 3" first in its
 * description (with how many hosts finished the phase), what the phase does and what to run next
 * in the tooltip, and the `rotating` context flag for the "Rotate CA…" inline action. A
 * rotation.json that cannot be used says so instead (the rotation commands refuse it too).
 */
import { localStamp } from '../format/stamp';
import type { RotationProgress } from '../rotate/state';
import { PHASES } from '../rotate/words';

/** The part of the Certificates node this decorates (structural: model.ts's node fits). */
interface Decorated {
  description?: string;
  tooltip?: string;
  rotation?: 'phase-1' | 'phase-2' | 'phase-3' | 'broken';
}

export function rotationText(p: RotationProgress): { text: string; lines: string[] } {
  if ('problem' in p)
    return {
      text: 'CA rotation state unusable',
      lines: [`CA rotation: ${p.problem}`],
    };
  const progress = p.done > 0 ? `, ${p.done} of ${p.of} hosts done` : '';
  return {
    text: `CA rotation: phase ${p.phase} of 3${progress}`,
    lines: [
      `CA rotation started ${localStamp(Date.parse(p.startedAt))}; the new CA is valid until ${p.newCaUntil.slice(0, 10)}.`,
      `Phase ${p.phase} of 3${progress || ' (no host done yet)'}: ${PHASES[p.phase]}.`,
      p.done > 0
        ? `Rotate CA… (\`k3s-etcd certs rotate-ca\`) goes on with the ${p.of - p.done} host(s) not done.`
        : `Rotate CA… (\`k3s-etcd certs rotate-ca\`) runs phase ${p.phase}.`,
      'Until the rotation ends, Generate, Renew and Import CA are refused.',
    ],
  };
}

/** The Certificates node with the rotation in progress said first. */
export function withRotation<T extends Decorated>(node: T, p: RotationProgress | undefined): T {
  if (!p) return node;
  const { text, lines } = rotationText(p);
  node.description = node.description ? `${text} · ${node.description}` : text;
  node.tooltip = [...lines, node.tooltip ?? ''].filter(Boolean).join('\n');
  node.rotation = 'problem' in p ? 'broken' : `phase-${p.phase}`;
  return node;
}
