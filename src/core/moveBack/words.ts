/**
 * The words of the move back to SQLite, once for both front ends: the plan (a dry run's text, the
 * editor's Markdown preview), the confirmation, and what happened with what to do next. Names
 * come from the inventory and the host: Markdown gets them escaped (mdText). No value of
 * config.yaml is ever in these words (it holds the token): key names only.
 */
import { K3S_CONFIG } from '../k3s/server';
import { mdText } from '../plan/words';
import type { MoveBackPreview, MoveBackResult } from './run';

const list = (xs: readonly string[]) => xs.join(', ');
/** "edge-2 is … an agent" or "edge-2, edge-3 are … agents". */
const many = (xs: readonly string[], one: string, more: string) => (xs.length > 1 ? more : one);
const apiUrl = (address: string) =>
  `https://${address.includes(':') ? `[${address}]` : address}:6443`;

/** How to start a server this run stopped again (it is still on etcd, unchanged). */
export const startAgain = (host: string, disabled: boolean): string =>
  `${host}: sudo systemctl ${disabled ? 'enable --now' : 'start'} k3s`;

/** The plan, one line per change, in the order it happens. */
export function moveBackPlanLines(p: MoveBackPreview): string[] {
  const stops = [
    ...p.others.map((h) => `${h} (stopped and disabled)`),
    `${p.chosen} (stopped until its state.db is in place)`,
  ];
  const lines = [
    `K3s on SQLite runs one server: ${p.chosen} keeps running.${p.others.length > 0 ? ` ${list(p.others)} ${many(p.others, 'is', 'are')} stopped and disabled (systemctl disable --now k3s) and must rejoin as ${many(p.others, 'an agent', 'agents')} of ${p.chosen}, or be reinstalled: ${many(p.others, 'it does', 'they do')} not come back as ${many(p.others, 'a server', 'servers')}.` : ''}${p.notInstalled.length > 0 ? ` No K3s is installed on ${list(p.notInstalled)}: nothing to stop there.` : ''}`,
    `1. K3s stopped on every server, one at a time, before etcd is read, so no write made after the read is lost: ${list(stops)}. Running now: ${list(p.running) || 'none'}.`,
    `2. etcd read at one revision (now: ${p.etcd.keys} keys, ${p.etcd.totalBytes} bytes, ${p.etcd.leasedKeys} leased; ${p.etcd.token}) and written on this machine into a new kine database, ${p.target} (0600), then verified: count, leased count and SHA-256 of (key, value, TTL) equal to etcd's, before any host changes.`,
    p.aside.length > 0
      ? `3. On ${p.chosen}: the state.db files there moved aside, never deleted: ${p.aside.map((a) => `${a.from} → ${a.to}`).join('; ')}.`
      : `3. On ${p.chosen}: no state.db there now: nothing to move aside.`,
    `4. On ${p.chosen}: the verified file uploaded as ${p.stateDb} (root, 0600), its SHA-256 checked on the host.`,
    `5. On ${p.chosen}: ${K3S_CONFIG} rewritten without ${list(p.removedKeys)}; every other key kept byte for byte (${list(p.keptKeys) || 'none'}); the old file kept beside it as config.yaml.bak.<UTC time>.`,
    `6. On ${p.chosen}: K3s started on SQLite; the run waits until node ${p.node} is Ready.`,
    `On the first failure the run stops. A failure on ${p.chosen} after it was stopped puts it back: the old ${K3S_CONFIG}, K3s restarted on etcd, node Ready. etcd's data is never changed by the move: it stays as it was read.`,
  ];
  return lines;
}

/** The plan as Markdown, for the editor's rendered preview. */
export function moveBackPlanMarkdown(p: MoveBackPreview, madeAt: string): string {
  const out = [
    `# Move K3s of ${mdText(p.cluster)} back to SQLite on ${mdText(p.chosen)}`,
    '',
    `A dry run made ${mdText(madeAt)}: every K3s server and etcd were only read.`,
    '',
  ];
  for (const l of moveBackPlanLines(p)) {
    const m = /^(\d+)\. (.*)$/.exec(l);
    out.push(m ? `${m[1]}. ${mdText(m[2] ?? '')}` : `\n${mdText(l)}\n`);
  }
  return `${out.join('\n')}\n`;
}

/** The confirmation's question and detail. */
export function moveBackQuestion(p: MoveBackPreview): string {
  return `Stop K3s on ${list([...p.others, p.chosen])} and move ${p.chosen} to SQLite?`;
}

export function moveBackConfirmDetail(p: MoveBackPreview): string {
  return [
    p.others.length > 0
      ? `${list(p.others)} will be stopped and disabled: they must rejoin as agents or be reinstalled.`
      : '',
    `The cluster's API is down from the first stop until ${p.node} is Ready on SQLite.`,
    `${p.chosen}: state.db replaced by the one read from etcd (the old files moved aside as *.old-<time>); config.yaml without ${list(p.removedKeys)} (the old file kept beside it).`,
    "etcd's data is not changed.",
  ]
    .filter(Boolean)
    .join(' ');
}

/** What happened and what to do next, one line each. */
export function moveBackOutcome(r: MoveBackResult): string[] {
  const p = r.preview;
  const m = r.migration;
  const stoppedOthers = r.stopped.filter((s) => s.host !== p.chosen);
  const restart = (hosts: MoveBackResult['stopped']) =>
    hosts.length > 0
      ? `Stopped by this run, still on etcd and unchanged: ${hosts.map((s) => s.host).join(', ')}. To start them again: ${hosts.map((s) => startAgain(s.host, s.disabled)).join('; ')}.`
      : '';
  if (r.ok && m) {
    return [
      `K3s of ${p.cluster} runs on SQLite on ${p.chosen}: node ${p.node} is Ready.`,
      `${p.stateDb} holds the state read from etcd at revision ${r.source?.revision || '(the read)'}: ${m.verify.foundKeys} keys, ${m.verify.leasedFound} leased, verified (SHA-256 of the keys ${m.verify.targetSha256.slice(0, 16)}…; file SHA-256 ${r.stateDb?.sha256.slice(0, 16) ?? '?'}…, checked on the host). A copy stays at ${m.file}.`,
      p.aside.length > 0
        ? `The old state.db files are kept as ${p.aside.map((a) => a.to).join(', ')}.`
        : '',
      `${K3S_CONFIG} no longer names ${list(p.removedKeys)}; the old file is beside it (config.yaml.bak.<UTC time>).`,
      stoppedOthers.length > 0 || p.others.length > 0
        ? `${list(p.others)} ${many(p.others, 'is', 'are')} stopped and disabled: join ${many(p.others, 'it', 'them')} to ${p.chosen} as ${many(p.others, 'an agent', 'agents')} (K3s's install.sh with K3S_URL=${apiUrl(p.chosenAddress)} and the cluster token), or reinstall ${many(p.others, 'it', 'them')}.`
        : '',
      `etcd still holds the data as of the read: nothing was deleted there. Kubernetes clients relist once (kine numbers revisions from 1 again). Fetch the kubeconfig again if you use ${p.chosen}'s.`,
    ].filter(Boolean);
  }
  const lines: string[] = [];
  switch (r.failedAt) {
    case 'stop':
      lines.push(
        `Stopping K3s failed: ${r.error ?? 'unknown'}. etcd was not read and ${p.chosen}'s state.db and config.yaml were not changed.`,
      );
      break;
    case 'migrate':
      lines.push(
        `Writing the state.db failed: ${r.error ?? 'unknown'}. No host was changed beyond the stops; etcd was only read.`,
      );
      break;
    case 'repoint': {
      const back = r.rollback;
      lines.push(`Moving ${p.chosen} to SQLite failed: ${r.error ?? 'unknown'}.`);
      lines.push(
        back && (back.status === 'changed' || back.status === 'unchanged')
          ? `${p.chosen} is back on etcd: its old ${K3S_CONFIG} restored (the SQLite one kept beside it), K3s restarted, node ${p.node} Ready. etcd's data was never changed.`
          : `Putting ${p.chosen} back on etcd failed too: ${back?.error?.message ?? 'not run'}. Its old config.yaml is the newest config.yaml.bak.<UTC time> beside ${K3S_CONFIG}: copy it back and run sudo systemctl restart k3s there.`,
      );
      lines.push(
        `${p.stateDb} on ${p.chosen} may hold the new state (K3s on etcd does not read it)${p.aside.length > 0 ? `; the old files are at ${p.aside.map((a) => a.to).join(', ')}` : ''}. The verified copy is at ${r.migration?.file ?? p.target}.`,
      );
      break;
    }
  }
  const still = r.failedAt === 'repoint' ? stoppedOthers : r.stopped;
  lines.push(restart(still));
  lines.push(
    'Fix the cause and run the move again (with a new --target: the file is never overwritten).',
  );
  return lines.filter(Boolean);
}
