/**
 * What ticks each step of the walkthrough (package.json `contributes.walkthroughs`, whose
 * `completionEvents` must be exactly `completionEvents(step)`: the manifest test checks it).
 *
 * VS Code's walkthrough service hears `onCommand:` only while it exists, and it is created
 * lazily (when Get Started or a walkthrough opens): a command run before that never ticks its
 * step. An `onContext:` key that is already true when the service registers the steps does not
 * tick either (VS Code 1.100 counts it as seen; only a change to true ticks). So the extension
 * also marks a step done itself (walkthrough.ts): when one of the step's commands finished
 * without an error, and when the step's state holds (at activation and on every change);
 * `stepsDone` decides which. A step whose command only starts or previews the work (Provision
 * etcd starts a task that may be declined or fail; the preview changes nothing) ticks on its
 * state alone: for provisioning, a task that ended with exit code 0 (`provisionedByTask`) or a
 * cluster that answers with members. Pure, for the unit tests.
 */
import { CONTEXT_KEYS, EXTENSION_ID, type CommandKey } from '../shared/commands';
import { TASK_TYPE } from './tasks/definition';

export const WALKTHROUGH_ID = 'moveK3sToEtcd';

export interface WalkthroughStep {
  readonly id: string;
  /**
   * Every command that performs the step (palette, tree menus and inline actions, buttons):
   * finished without an error, it ticks the step.
   */
  readonly commands: readonly CommandKey[];
  /** A context key the extension sets from the workspace's state, true once the step is done. */
  readonly state?: string;
  /**
   * Commands the step's description links to that only start or preview it: they never tick it
   * (the step's state does, once the work is done).
   */
  readonly starts?: readonly CommandKey[];
}

export const WALKTHROUGH_STEPS: readonly WalkthroughStep[] = [
  { id: 'inventory', commands: ['inventoryCreate'], state: CONTEXT_KEYS.inventoryPresent },
  { id: 'certificates', commands: ['certsGenerate'], state: CONTEXT_KEYS.hasCertificates },
  {
    id: 'provision',
    commands: [],
    state: CONTEXT_KEYS.provisioned,
    starts: ['provisionPreview', 'provisionEtcd'],
  },
  { id: 'health', commands: ['clusterOpenHealth'] },
  { id: 'backup', commands: ['k3sBackup'] },
  { id: 'migrate', commands: ['migrateSqliteToEtcd'] },
  { id: 'k3s', commands: ['k3sInstall'] },
  { id: 'ipchange', commands: ['memberFixPeerUrl'] },
];

/** The id VS Code gives a step: `<extension id>#<walkthrough id>#<step id>`. */
export function qualifiedStepId(stepId: string): string {
  return `${EXTENSION_ID}#${WALKTHROUGH_ID}#${stepId}`;
}

/** A command of the table that finished: which, and whether it ended without an error. */
export interface CommandRan {
  command: CommandKey;
  ok: boolean;
}

/**
 * The ids of the steps done, given the state keys the extension set (`true` once their state
 * holds) and the command that just finished, if any: a step whose state holds, or one of whose
 * commands ended without an error. A command that only starts or previews a step never ticks it.
 */
export function stepsDone(
  state: Readonly<Record<string, boolean | undefined>>,
  ran?: CommandRan,
): string[] {
  return WALKTHROUGH_STEPS.filter(
    (s) =>
      (s.state !== undefined && state[s.state] === true) ||
      (ran?.ok === true && s.commands.includes(ran.command)),
  ).map((s) => s.id);
}

/** A task that ended (its definition and exit code) provisioned etcd: Provision etcd, exit 0. */
export function provisionedByTask(
  definition: { type?: unknown; operation?: unknown },
  exitCode: number | undefined,
): boolean {
  return (
    definition.type === TASK_TYPE && definition.operation === 'provision-etcd' && exitCode === 0
  );
}

/** package.json's `completionEvents` for `step`, given the command table. */
export function completionEvents(
  step: WalkthroughStep,
  commandIds: Readonly<Record<CommandKey, string>>,
): string[] {
  return [
    ...step.commands.map((c) => `onCommand:${commandIds[c]}`),
    ...(step.state === undefined ? [] : [`onContext:${step.state}`]),
  ];
}
