/**
 * The keyspace from the editor (the CLI's `keyspace`): "Show Key…" opens one key's decoded value
 * as a read-only document (a Secret: metadata only). The key comes from the Keyspace tab's
 * largest keys, or is picked from the last scan's largest keys or typed.
 */
import * as vscode from 'vscode';
import { humanBytes } from '../../shared/etcdTypes';
import { objectLine } from '../../core/keyspace/render';
import { printable, renderKeyView } from '../../core/keyspace/view';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { clusterNamed, resolveCluster } from '../pick';
import { planUri, type PlanDocuments } from '../planDocuments';

/** What the Keyspace tab passes: a cluster and one of its keys. */
export interface KeyRef {
  cluster: string;
  key: string;
}

const isKeyRef = (x: unknown): x is KeyRef =>
  typeof (x as KeyRef)?.cluster === 'string' && typeof (x as KeyRef)?.key === 'string';

/** The key to show: one of the last scan's largest keys, or typed. */
async function pickKey(ctx: ExtensionCtx, cluster: string): Promise<string | undefined> {
  const top = ctx.keyspace.state(cluster).report?.top ?? [];
  const typed = '$(edit) Type a key…';
  if (top.length) {
    const pick = await vscode.window.showQuickPick(
      [
        ...top.map((t) => ({
          label: printable(t.key),
          description: humanBytes(t.bytes),
          detail: objectLine(t),
          key: t.key,
        })),
        { label: typed, key: '' },
      ],
      { title: `Show a key of ${cluster}: the largest keys of the last scan`, matchOnDetail: true },
    );
    if (!pick) return undefined;
    if (pick.key) return pick.key;
  }
  return vscode.window.showInputBox({
    title: `Show a key of ${cluster}`,
    prompt: 'The etcd key, e.g. /registry/configmaps/kube-system/coredns',
    value: '/registry/',
    validateInput: (v) => (v.length === 0 ? 'Type a key' : undefined),
  });
}

export function showKeyCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (arg?: TreeNode): Promise<void> => {
    const ref = isKeyRef(arg) ? arg : undefined;
    const cluster = ref ? clusterNamed(ctx, ref.cluster) : await resolveCluster(ctx, arg);
    const key = ref?.key ?? (await pickKey(ctx, cluster.name));
    if (!key) return;
    const view = await ctx.keyspace.showKey(cluster, key);
    // A file name from the key: safe characters only, the key itself is in the document.
    const name = `keyspace/${cluster.name.replace(/[^A-Za-z0-9._-]+/g, '_')}/${key.replace(/[^A-Za-z0-9._-]+/g, '_').slice(-120)}.txt`;
    const uri = planUri(name);
    docs.set(uri, renderKeyView(view));
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), {
      preview: true,
    });
  };
}
