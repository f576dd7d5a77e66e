/**
 * A CA rotation in words, once for both front ends: the phase and what it does, the two CAs,
 * what each host gets, the rolling order with who restarts and why, the K3s servers' order, the
 * hosts already done, a refusal; the outcome; the JSON both print (never a key).
 */
import { isEncryptedPem } from '../pki/keys';
import { rollingPlanLines } from '../rolling/restarts';
import type { HostRun } from '../plan/runner';
import { RESTART_WHY } from '../renew/words';
import type { RotatePlan, RotateResult } from './run';

const day = (iso: string) => iso.slice(0, 10);

export const PHASES: Record<1 | 2 | 3, string> = {
  1: 'trust both CAs: every member (client and peer trust) and K3s server gets a CA bundle, the old CA and the new one, as the CA file it trusts; their certificates stay as they are',
  2: "every certificate re-issued under the new CA (members' server and peer, K3s's datastore client, the admin client) and rolled out; the hosts keep trusting both CAs",
  3: 'trust only the new CA: the bundle replaced by the new CA alone on every member and K3s server; the old CA and its key are then kept aside in ca-old-<UTC time>/ in the pki folder and ca.pem is the new CA',
};

/** What one host gets this phase. */
function gets(plan: RotatePlan, member: string | undefined, k3s: boolean): string {
  const ca = plan.phase === 3 ? 'the new CA alone as its CA file' : 'the CA bundle (old + new)';
  if (plan.phase !== 2) return ca;
  const leaves = plan.leaves
    .filter((l) => (k3s ? l.path === 'client/k3s.pem' : l.member === member))
    .map((l) => `${l.path} (until ${day(l.notAfter)})`);
  return leaves.length > 0
    ? `${leaves.join(', ')} under the new CA, beside ${ca}`
    : `its certificates already re-issued under the new CA in the workspace, beside ${ca}`;
}

export function rotatePlanLines(plan: RotatePlan): string[] {
  const lines = [
    `CA rotation of ${plan.cluster}, phase ${plan.phase} of 3: ${PHASES[plan.phase]}.`,
    `  old CA: ${plan.oldCa.subject}, SHA-256 ${plan.oldCa.sha256}, until ${day(plan.oldCa.notAfter)}`,
    `  new CA: ${plan.newCa.subject}, SHA-256 ${plan.newCa.sha256}, until ${day(plan.newCa.notAfter)}${plan.starting ? ` (made now; kept in rotation/ in the pki folder until phase 3${plan.newCaPair && isEncryptedPem(plan.newCaPair.keyPem) ? "; its key encrypted with ca-key.pem's passphrase" : ''})` : ''}`,
  ];
  const done = [...plan.done.members, ...plan.done.k3sServers.map((h) => `${h} (K3s)`)];
  if (done.length > 0) lines.push(`already done in this phase: ${done.join(', ')}`);
  for (const h of plan.members)
    lines.push(`  ${h.name} (member ${h.memberName}) gets ${gets(plan, h.memberName, false)}`);
  for (const h of plan.k3sServers)
    lines.push(`  ${h.name} (K3s server) gets ${gets(plan, undefined, true)}`);
  if (plan.phase === 2 && plan.leaves.some((l) => l.path === 'client/admin.pem'))
    lines.push(
      "  the workspace gets client/admin.pem re-issued under the new CA (this tool's own client; no host holds it)",
    );
  if (plan.phase === 2 && plan.leaves.some((l) => l.path === 'client/monitoring.pem'))
    lines.push(
      '  the workspace gets client/monitoring.pem re-issued under the new CA: give Prometheus the new files (and ca.pem, the bundle) before phase 3 (`k3s-etcd monitoring export` writes the kubectl line again)',
    );
  const order = rollingPlanLines(plan.rolling);
  if (order.length > 0) lines.push(...order, `why restart: ${RESTART_WHY}.`);
  if (plan.k3sRuns.length > 0)
    lines.push(
      `then the K3s servers, one at a time (their datastore files, K3s restarted, the node Ready before the next; the first that fails gets its old files back): ${plan.k3sRuns
        .map((r) => `${r.host}${r.status === 'unchanged' ? ' (already has them)' : ''}`)
        .join(', ')}`,
    );
  lines.push(
    plan.phase < 3
      ? `after it: phase ${plan.phase + 1} (run \`k3s-etcd certs rotate-ca\` again); a phase that stops half way is continued by running it again`
      : 'after it: the rotation is finished',
  );
  if (plan.refusal) lines.push(`refused: ${plan.refusal}`);
  return lines;
}

const ok = (r: HostRun) => r.status === 'changed' || r.status === 'unchanged';

export function rotateOutcomeLines(result: RotateResult): string[] {
  const lines: string[] = [];
  for (const r of [...result.memberRuns, ...result.k3sRuns].filter((x) => !ok(x)))
    lines.push(`${r.host}: ${r.error?.message ?? r.status}`);
  if (result.putBack.length > 0)
    lines.push(
      `Not re-issued (the workspace keeps their previous files, as the hosts do): ${result.putBack.join(', ')}.`,
    );
  if (result.oldCaKept)
    lines.push(
      `CA rotation finished: every host trusts only the new CA; the old CA and its key are kept in ${result.oldCaKept}/ in the pki folder. \`k3s-etcd certs check\` shows the hosts.`,
    );
  else if (result.next)
    lines.push(
      `Phase ${result.phase} done on every host. Run \`k3s-etcd certs rotate-ca\` for phase ${result.next}.`,
    );
  else
    lines.push(
      `Phase ${result.phase} stopped before every host had it (the hosts that did are recorded). Fix the cause and run \`k3s-etcd certs rotate-ca\` again to go on with the others.`,
    );
  return lines;
}

export function rotatePlanJson(plan: RotatePlan): Record<string, unknown> {
  return {
    cluster: plan.cluster,
    phase: plan.phase,
    starting: plan.starting,
    oldCa: plan.oldCa,
    newCa: plan.newCa,
    trust: plan.trust,
    done: plan.done,
    members: plan.members.map((h) => h.name),
    k3sServers: plan.k3sServers.map((h) => h.name),
    certificates: plan.leaves.map((l) => ({
      path: l.path,
      cn: l.cn,
      sha256: l.sha256,
      notAfter: l.notAfter,
    })),
    rolling: plan.rolling,
    ...(plan.refusal ? { refusal: plan.refusal } : {}),
  };
}
