/** The etcd health panel of a cluster (the CLI's `health`, `status` and `members`). */
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { pickCluster } from '../pick';
import { HealthPanel } from '../webviewHost/healthPanel';

export function openHealthPanel(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    HealthPanel.show(ctx, await pickCluster(ctx, node));
  };
}
