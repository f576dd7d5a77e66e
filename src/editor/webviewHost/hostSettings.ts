/**
 * The health panel's Read Settings from Hosts: what each member's etcd really runs with, read on
 * its host over SSH (core/etcd/runningSettings.ts) when the person asks, never on a timer (SSH
 * may prompt) and never in Restricted Mode. The panel keeps the last comparison while it is
 * open; the Status tab shows it in its settings section.
 */
import type { Cluster } from '../../core/inventory/types';
import { readHostSettings } from '../../core/etcd/runningSettings';
import type { HostSettings, SettingsInEffect } from '../../shared/etcdTypes';
import type { ExtensionCtx } from '../ctx';
import { showError } from '../errors';
import { withCancellableProgress } from '../progress';
import { editorSshContext } from '../sshPrompts';

export const READ_SETTINGS_WHAT = "Reading etcd's settings on the hosts";

/** Reads `cluster`'s hosts; throws UntrustedWorkspaceError in Restricted Mode, before any SSH. */
export async function readSettingsFromHosts(
  ctx: ExtensionCtx,
  cluster: Cluster,
): Promise<HostSettings> {
  ctx.trust.require(READ_SETTINGS_WHAT);
  const ssh = await editorSshContext(ctx);
  const s = await withCancellableProgress(
    `${READ_SETTINGS_WHAT} of ${cluster.name}`,
    (_report, signal) => readHostSettings(cluster, { ssh, signal }),
  );
  ctx.log.info(
    `etcd settings on the hosts of ${cluster.name}: ${s.actions.length === 0 ? "every member runs with the inventory's" : s.actions.join('; ')}`,
  );
  return s;
}

/** One panel's reads: the last comparison, and whether one is running. */
export class HostSettingsReads {
  private last: HostSettings | undefined;
  private reading = false;

  constructor(private readonly ctx: ExtensionCtx) {}

  /** What the panel's settings section adds. */
  state(): Pick<SettingsInEffect, 'fromHosts' | 'readingHosts'> {
    return {
      ...(this.last ? { fromHosts: this.last } : {}),
      ...(this.reading ? { readingHosts: true } : {}),
    };
  }

  /** Reads (one at a time); `changed` posts the panel's state before and after. */
  async read(cluster: Cluster | undefined, changed: () => void): Promise<void> {
    if (!cluster || this.reading) return;
    this.reading = true;
    changed();
    let failed: unknown;
    try {
      this.last = await readSettingsFromHosts(this.ctx, cluster);
    } catch (err) {
      failed = err ?? new Error('failed');
    }
    this.reading = false;
    changed();
    if (failed) await showError(this.ctx.log, 'Read Settings from Hosts', failed);
  }
}
