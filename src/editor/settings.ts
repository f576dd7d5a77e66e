/**
 * Every setting of the extension, once: its key under `k3sEtcd.` and its default, as
 * package.json declares them (the manifest test checks both directions). Pure, so tests read it
 * without VS Code; `config.ts` reads the values through it.
 */
import { INVENTORY_FILE_NAME } from '../core/inventory/types';

export const SECTION = 'k3sEtcd';

export const SETTINGS = {
  inventoryPath: { key: 'inventoryPath', default: INVENTORY_FILE_NAME as string },
  pkiAlgorithm: { key: 'pki.algorithm', default: 'ecdsa-p256' as string },
  certificatesWarnDays: { key: 'certificates.warnDays', default: 30 },
  healthRefreshIntervalSeconds: { key: 'health.refreshIntervalSeconds', default: 10 },
  healthTimeoutMs: { key: 'health.timeoutMs', default: 5000 },
  metricsIntervalSeconds: { key: 'metrics.intervalSeconds', default: 10 },
  metricsWindowMinutes: { key: 'metrics.windowMinutes', default: 15 },
  sshConnectTimeoutSeconds: { key: 'ssh.connectTimeoutSeconds', default: 20 },
  snapshotIntervalMinutes: { key: 'snapshot.intervalMinutes', default: 0 },
  maintainFreeShare: { key: 'maintain.freeShare', default: 0.5 },
  maintainMinSizeMiB: { key: 'maintain.minSizeMiB', default: 64 },
  maintainQuotaShare: { key: 'maintain.quotaShare', default: 0.8 },
  maintainRecentRevisions: { key: 'maintain.recentRevisions', default: 10_000 },
} as const;

export type SettingName = keyof typeof SETTINGS;
export type SettingValue<N extends SettingName> = (typeof SETTINGS)[N]['default'];

/** `k3sEtcd.<key>`, as VS Code names it. */
export function settingId(name: SettingName): string {
  return `${SECTION}.${SETTINGS[name].key}`;
}
