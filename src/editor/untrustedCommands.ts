/**
 * Commands that never connect (no SSH, etcd or metrics) and never write where the inventory
 * points: they run in Restricted Mode. Anything not listed needs trust, so a new command is
 * refused until someone decides otherwise; the tree's menus show only these until the workspace
 * is trusted (package.json's `isWorkspaceTrusted` clauses, checked by a unit test). Pure: no
 * `vscode` import, so the manifest test reads it.
 */
import type { CommandKey } from '../shared/commands';
import type {
  HealthWebviewToHost,
  KeyspaceWebviewToHost,
  MetricsWebviewToHost,
  PerfWebviewToHost,
} from '../shared/protocol';

export const WORKS_UNTRUSTED: ReadonlySet<CommandKey> = new Set<CommandKey>([
  'inventoryCreate',
  'inventoryOpen',
  'inventoryValidate',
  'treeRefresh',
  'problemReveal',
  'clusterOpenPanel',
  'hostCopyAddress',
  'certsInspect',
  'etcdctlCopyEnv',
  'docsOpen',
  'logShow',
]);

type HealthPanelMethod = (
  HealthWebviewToHost | PerfWebviewToHost | MetricsWebviewToHost | KeyspaceWebviewToHost
)['method'];

/**
 * The health panel's messages: what each one does, in words, when it connects, runs something or
 * starts a command (refused until the workspace is trusted), or undefined when it only shows,
 * copies or stops what is there. A new message does not build until it is decided here.
 */
export const HEALTH_PANEL_TRUST: Readonly<Record<HealthPanelMethod, string | undefined>> = {
  'health/ready': undefined, // the last state; the pollers fetch only when trusted
  'health/refresh': 'Refreshing etcd health',
  'health/copyMarkdown': undefined,
  'health/openCli': 'Opening the CLI in a terminal',
  'health/generateCerts': 'Generating certificates',
  'health/provision': 'Provisioning etcd',
  'health/previewPlan': 'Previewing the provisioning plan',
  'health/showBackups': 'Reading the backups on the hosts',
  'health/readSettings': 'Reading the settings etcd runs with on the hosts',
  'perf/run': 'A performance check',
  'perf/cancel': undefined,
  'perf/export': undefined, // a saved report as Markdown
  'perf/compare': undefined,
  'perf/reclaim': 'Compacting and defragmenting',
  'metrics/refresh': 'Refreshing the metrics',
  'metrics/maintain': 'Maintenance',
  'keyspace/scan': 'A keyspace scan',
  'keyspace/cancel': undefined,
  'keyspace/showKey': 'Showing a key',
};

/** What a health panel message does when it needs trust (see HEALTH_PANEL_TRUST). */
export function healthPanelNeedsTrust(msg: unknown): string | undefined {
  const method =
    typeof msg === 'object' && msg !== null ? (msg as { method?: unknown }).method : undefined;
  return typeof method === 'string' && Object.hasOwn(HEALTH_PANEL_TRUST, method)
    ? HEALTH_PANEL_TRUST[method as HealthPanelMethod]
    : undefined;
}
