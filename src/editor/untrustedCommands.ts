/**
 * Commands that never connect (no SSH, etcd or metrics) and never write where the inventory
 * points: they run in Restricted Mode. Anything not listed needs trust, so a new command is
 * refused until someone decides otherwise; the tree's menus show only these until the workspace
 * is trusted (package.json's `isWorkspaceTrusted` clauses, checked by a unit test). Pure: no
 * `vscode` import, so the manifest test reads it.
 */
import type { CommandKey } from '../shared/commands';

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
