/**
 * Typed access to every setting, read in this one place with its default from `settings.ts`
 * (which matches package.json). A value of the wrong type reads as the default.
 */
import * as vscode from 'vscode';
import { isAbsolute, join } from 'node:path';
import { ruleFrom, type DefragRule } from '../core/maintain/rule';
import { SECTION, SETTINGS, settingId, type SettingName, type SettingValue } from './settings';

function read<N extends SettingName>(name: N): SettingValue<N> {
  const s = SETTINGS[name];
  const v = vscode.workspace.getConfiguration(SECTION).get<unknown>(s.key);
  return (typeof v === typeof s.default && v !== '' ? v : s.default) as SettingValue<N>;
}

export const Config = {
  get: read,
  inventoryPathSetting(): string {
    return read('inventoryPath');
  },
  /** Absolute inventory path, or undefined when no folder is open. */
  inventoryFile(): string | undefined {
    const setting = Config.inventoryPathSetting();
    if (isAbsolute(setting)) return setting;
    const folder = vscode.workspace.workspaceFolders?.[0];
    return folder ? join(folder.uri.fsPath, setting) : undefined;
  },
  /** Key algorithm for clusters whose inventory does not choose one. */
  pkiAlgorithm(): string {
    return read('pkiAlgorithm');
  },
  /** Check Deployed Certificates' warning window in days (out of range reads as the default). */
  certificatesWarnDays(): number {
    const v = read('certificatesWarnDays');
    return Number.isInteger(v) && v >= 0 && v <= 3650 ? v : SETTINGS.certificatesWarnDays.default;
  },
  /**
   * Maintenance's rule from the k3sEtcd.maintain.* settings (Maintain etcd… and the timer): a
   * value out of range reads as its default, and `warn` says so.
   */
  maintainRule(warn: (message: string) => void): DefragRule {
    const rule = ruleFrom({
      freeShare: read('maintainFreeShare'),
      minDbBytes: read('maintainMinSizeMiB') * 1024 * 1024,
      quotaShare: read('maintainQuotaShare'),
      recentRevisions: read('maintainRecentRevisions'),
    });
    if (typeof rule !== 'string') return rule;
    warn(`k3sEtcd.maintain.*: ${rule}; the defaults are used`);
    return ruleFrom({}) as DefragRule;
  },
  affectsInventory(e: vscode.ConfigurationChangeEvent): boolean {
    return e.affectsConfiguration(settingId('inventoryPath'));
  },
  affects(e: vscode.ConfigurationChangeEvent, ...names: SettingName[]): boolean {
    return names.some((n) => e.affectsConfiguration(settingId(n)));
  },
};
