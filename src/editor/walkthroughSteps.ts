/**
 * What ticks each step of the walkthrough (package.json `contributes.walkthroughs`, whose
 * `completionEvents` must be exactly `completionEvents(step)`: the manifest test checks it).
 *
 * VS Code's walkthrough service hears `onCommand:` only while it exists, and it is created
 * lazily (when Get Started or a walkthrough opens): a command run before that never ticks its
 * step. An `onContext:` key that is already true when the service registers the steps does not
 * tick either (VS Code 1.100 counts it as seen; only a change to true ticks). So the extension
 * also marks a step done itself (walkthrough.ts): when one of the step's commands finishes, and
 * when the step's state holds (at activation and on every change). Pure, for the unit tests.
 */
import { CONTEXT_KEYS, EXTENSION_ID, type CommandKey } from '../shared/commands';

export const WALKTHROUGH_ID = 'moveK3sToEtcd';

export interface WalkthroughStep {
  readonly id: string;
  /** Every command that performs the step (palette, tree menus and inline actions, buttons). */
  readonly commands: readonly CommandKey[];
  /** A context key the extension sets from the workspace's state, true once the step is done. */
  readonly state?: string;
}

export const WALKTHROUGH_STEPS: readonly WalkthroughStep[] = [
  { id: 'inventory', commands: ['inventoryCreate'], state: CONTEXT_KEYS.inventoryPresent },
  { id: 'certificates', commands: ['certsGenerate'], state: CONTEXT_KEYS.hasCertificates },
  {
    id: 'provision',
    commands: ['provisionPreview', 'provisionEtcd'],
    state: CONTEXT_KEYS.provisioned,
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

/** The steps a command performs (usually one, or none). */
export function stepsRunBy(command: CommandKey): WalkthroughStep[] {
  return WALKTHROUGH_STEPS.filter((s) => s.commands.includes(command));
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
