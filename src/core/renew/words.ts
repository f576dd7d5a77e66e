/**
 * A renewal in words, once for both front ends: the certificates re-issued (CN, new expiry,
 * the one they replace), the members' rolling order with who restarts and why, the K3s servers'
 * order, the refusal if there is one; the outcome; and the JSON both print (never a key).
 */
import { rollingPlanLines } from '../rolling/restarts';
import type { HostRun } from '../plan/runner';
import type { RenewPlan, RenewResult } from './run';

const day = (iso: string) => iso.slice(0, 10);
const daysLeft = (iso: string, now: Date) =>
  Math.floor((new Date(iso).getTime() - now.getTime()) / 86_400_000);

/** Why every member restarts although etcd would serve the new files without one. */
export const RESTART_WHY =
  'etcd re-reads its certificate files on every new connection, so a renewed file is served even without a restart; each member is restarted on its new files anyway, one at a time, because that proves it starts and runs with them (a member that does not gets its old files back and the rollout stops there)';

/** The plan as lines: certificates, members' order, K3s servers, the workspace, a refusal. */
export function renewPlanLines(plan: RenewPlan, now = new Date()): string[] {
  const lines = [
    `Re-issued under the same CA (it is valid until ${day(plan.caNotAfter)}):`,
    ...plan.leaves.map((l) => {
      const was = l.old
        ? `replaces one until ${day(l.old.notAfter)} (${daysLeft(l.old.notAfter, now)} days left)`
        : 'none in the workspace yet';
      return `  ${l.path.padEnd(22)} CN ${l.cn.padEnd(12)} until ${day(l.notAfter)}; ${was}`;
    }),
  ];
  const order = rollingPlanLines(plan.rolling);
  if (order.length > 0) lines.push(...order, `why restart: ${RESTART_WHY}.`);
  if (plan.k3sRuns.length > 0) {
    lines.push(
      `then the K3s servers, one at a time (their datastore client files, K3s restarted, the node Ready before the next; the first that fails gets its old files back): ${plan.k3sRuns
        .map((r) => `${r.host}${r.status === 'unchanged' ? ' (already has them)' : ''}`)
        .join(', ')}`,
    );
  }
  lines.push(
    `the previous certificates and keys are kept in ${plan.aside}/ in the pki folder until the rollout finished; any that did not reach their hosts are put back`,
  );
  if (plan.refusal) lines.push(`refused: ${plan.refusal}`);
  return lines;
}

const ok = (r: HostRun) => r.status === 'changed' || r.status === 'unchanged';

/** The outcome as lines. */
export function renewOutcomeLines(result: RenewResult): string[] {
  const lines: string[] = [];
  const deployed = result.leaves.filter((l) => l.deployed);
  if (deployed.length > 0)
    lines.push(
      `Renewed and deployed: ${deployed.map((l) => `${l.path} (until ${day(l.notAfter)})`).join(', ')}.`,
    );
  for (const r of [...result.memberRuns, ...result.k3sRuns].filter((x) => !ok(x)))
    lines.push(`${r.host}: ${r.error?.message ?? r.status}`);
  if (result.putBack.length > 0)
    lines.push(
      `Not renewed (the workspace keeps their previous files, as the hosts do): ${result.putBack.join(', ')}. Run \`k3s-etcd certs renew\` again once the cause is fixed.`,
    );
  if (result.kept) lines.push(`The previous files are kept in ${result.kept}.`);
  if (result.ok)
    lines.push('Every renewed certificate is on its hosts: `k3s-etcd certs check` shows them.');
  return lines;
}

/** The plan for --json and the editor: everything but the keys. */
export function renewPlanJson(plan: RenewPlan): Record<string, unknown> {
  return {
    cluster: plan.cluster,
    caNotAfter: plan.caNotAfter,
    certificates: plan.leaves.map((l) => ({
      path: l.path,
      name: l.name,
      cn: l.cn,
      sans: l.sans,
      sha256: l.sha256,
      notAfter: l.notAfter,
      ...(l.old ? { replaces: l.old } : {}),
    })),
    rolling: plan.rolling,
    k3sServers: plan.k3sRuns.map((r) => ({ host: r.host, status: r.status })),
    aside: plan.aside,
    ...(plan.refusal ? { refusal: plan.refusal } : {}),
  };
}
