/** `k3s-etcd certs rotate-ca`: a new CA without an outage, in three confirmed, resumable phases. */
import { planRotate, runRotate } from '../core/rotate/run';
import { PHASES, rotateOutcomeLines, rotatePlanJson, rotatePlanLines } from '../core/rotate/words';
import { PASSPHRASE_OPTION, pkiOptions } from './certs';
import { loadValid, selectCluster, type Subcommand } from './context';
import { CommandUsageError } from './usage';
import { runRollout, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

const rotateCommand: Subcommand = {
  name: 'certs rotate-ca',
  summary:
    'Replace the cluster CA without an outage, in three phases, each rolled out one host at a time',
  usage:
    'k3s-etcd certs rotate-ca [--phase 1|2|3] [--dry-run] [--yes] [--json] [--ca-passphrase-file F] [--accept-new-host-keys]',
  details: `Three phases, each shown and confirmed (--yes to skip; --dry-run only shows it):
  1. ${PHASES[1]};
  2. ${PHASES[2]};
  3. ${PHASES[3]}.
The new CA is made in phase 1 (the inventory's key algorithm, caValidityDays) and kept in
<pki>/rotation/ beside the old one; the rotation's state (phase, both CAs' fingerprints, the
hosts that finished the current phase) is in <pki>/rotation.json, and during the rotation ca.pem
is what the hosts trust. Without --phase the next phase runs; --phase N only runs phase N when
it is the one due. Each phase: members through the rolling engine (one at a time, followers
first, the leader last after handing its leadership over, every other voter healthy before
each, the member healthy and caught up after), then the K3s servers one at a time (files, K3s
restarted, the node Ready). The first that fails (or Ctrl-C) stops the phase and gets its
previous files back; running the command again continues the phase with the hosts not yet done.
When ca-key.pem is encrypted, its passphrase is asked (or read from --ca-passphrase-file) in
phase 1 and the new CA's key is written encrypted with it; phase 2 asks it again to sign.
Exit 1 when a host fails or the phase is refused.

${SSH_HELP}`,
  options: {
    ...SSH_OPTIONS,
    ...PASSPHRASE_OPTION,
    phase: { type: 'string' },
  },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const raw = ctx.values['phase'] as string | undefined;
    if (raw !== undefined && !/^[123]$/.test(raw))
      throw new CommandUsageError(
        '--phase takes 1, 2 or 3 (without it: the phase that is due)',
        'certs rotate-ca',
      );
    const common = {
      ...(raw ? { phase: Number(raw) as 1 | 2 | 3 } : {}),
      ssh: await sshContext(ctx),
      pki: pkiOptions(ctx),
    };
    const plan = await planRotate(cluster, common);
    return runRollout(
      ctx,
      plan,
      {
        lines: rotatePlanLines(plan),
        json: rotatePlanJson(plan),
        question: `Run phase ${plan.phase} of 3 of the CA rotation of ${cluster.name} on ${plan.members.length} member(s)${plan.k3sServers.length > 0 ? ` and ${plan.k3sServers.length} K3s server(s)` : ''}?`,
      },
      (hooks) => runRotate(cluster, plan, { ...common, ...hooks }),
      rotateOutcomeLines,
    );
  },
};

export const ROTATE_COMMANDS: Subcommand[] = [rotateCommand];
