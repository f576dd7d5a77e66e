/**
 * Every setting of the extension, once: its key under `k3sEtcd.` and its default, as
 * package.json declares them (the manifest test checks both directions). A default the core also
 * applies (the CLI's, a timer's) is the core's constant, not a second copy of its number. Pure, so
 * tests read it without VS Code; `config.ts` reads the values through it.
 */
import { INVENTORY_FILE_NAME } from '../core/inventory/types';
import { EXPIRY_WARNING_DAYS } from '../core/pki/inspect';
import { DEFAULT_TIMEOUT_MS as ETCD_TIMEOUT_MS } from '../core/etcd/client';
import { DEFAULT_CONNECT_TIMEOUT_MS as SSH_CONNECT_TIMEOUT_MS } from '../core/ssh/transport';
import { DEFAULT_DEFRAG_RULE as RULE } from '../core/maintain/rule';
import { DEFAULT_WINDOW_MS } from '../core/metrics/window';

const MiB = 1024 * 1024;

export const SECTION = 'k3sEtcd';

export const SETTINGS = {
  inventoryPath: { key: 'inventoryPath', default: INVENTORY_FILE_NAME as string },
  pkiAlgorithm: { key: 'pki.algorithm', default: 'ecdsa-p256' as string },
  certificatesWarnDays: { key: 'certificates.warnDays', default: EXPIRY_WARNING_DAYS },
  healthRefreshIntervalSeconds: { key: 'health.refreshIntervalSeconds', default: 10 },
  healthTimeoutMs: { key: 'health.timeoutMs', default: ETCD_TIMEOUT_MS },
  metricsIntervalSeconds: { key: 'metrics.intervalSeconds', default: 10 },
  metricsWindowMinutes: { key: 'metrics.windowMinutes', default: DEFAULT_WINDOW_MS / 60_000 },
  sshConnectTimeoutSeconds: {
    key: 'ssh.connectTimeoutSeconds',
    default: SSH_CONNECT_TIMEOUT_MS / 1000,
  },
  snapshotIntervalMinutes: { key: 'snapshot.intervalMinutes', default: 0 },
  maintainFreeShare: { key: 'maintain.freeShare', default: RULE.freeShare },
  maintainMinSizeMiB: { key: 'maintain.minSizeMiB', default: RULE.minDbBytes / MiB },
  maintainQuotaShare: { key: 'maintain.quotaShare', default: RULE.quotaShare },
  maintainRecentRevisions: { key: 'maintain.recentRevisions', default: RULE.recentRevisions },
} as const;

export type SettingName = keyof typeof SETTINGS;
export type SettingValue<N extends SettingName> = (typeof SETTINGS)[N]['default'];

/** `k3sEtcd.<key>`, as VS Code names it. */
export function settingId(name: SettingName): string {
  return `${SECTION}.${SETTINGS[name].key}`;
}
