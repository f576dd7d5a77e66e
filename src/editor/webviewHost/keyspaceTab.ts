/**
 * The health panel's Keyspace tab, host side: its state (the last scan made display-ready by
 * the core) and its messages (scan, cancel, show a key). Scans happen only when asked.
 */
import * as vscode from 'vscode';
import type { Cluster } from '../../core/inventory/types';
import { keyspaceTabReport } from '../../core/keyspace/render';
import { COMMANDS } from '../../shared/commands';
import {
  KeyspaceCancelCommand,
  KeyspaceScanCommand,
  KeyspaceShowKeyCommand,
  type KeyspaceTabState,
} from '../../shared/protocol';
import type { ExtensionCtx } from '../ctx';
import type { KeyRef } from '../commands/keyspace';

export function keyspaceTabState(ctx: ExtensionCtx, cluster: string): KeyspaceTabState {
  const s = ctx.keyspace.state(cluster);
  return {
    cluster,
    ...(s.running ? { running: s.running } : {}),
    ...(s.error ? { error: s.error } : {}),
    ...(s.at ? { at: s.at } : {}),
    ...(s.report ? { report: keyspaceTabReport(s.report) } : {}),
  };
}

/** Handles a Keyspace tab message; false when it is not one. */
export async function onKeyspaceMessage(
  ctx: ExtensionCtx,
  cluster: Cluster | undefined,
  name: string,
  msg: unknown,
): Promise<boolean> {
  if (KeyspaceScanCommand.is(msg)) {
    if (cluster) await ctx.keyspace.scan(cluster);
  } else if (KeyspaceCancelCommand.is(msg)) {
    ctx.keyspace.cancel(name);
  } else if (KeyspaceShowKeyCommand.is(msg)) {
    if (typeof msg.params?.key !== 'string') return true;
    const ref: KeyRef = { cluster: name, key: msg.params.key };
    await vscode.commands.executeCommand(COMMANDS.keyspaceShowKey, ref);
  } else {
    return false;
  }
  return true;
}
