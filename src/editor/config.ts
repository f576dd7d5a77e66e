/** Typed access to the extension's settings; defaults match package.json. */
import * as vscode from 'vscode';
import { isAbsolute, join } from 'node:path';
import { INVENTORY_FILE_NAME } from '../core/inventory/types';

const SECTION = 'k3sEtcd';

export const Config = {
  inventoryPathSetting(): string {
    return (
      vscode.workspace.getConfiguration(SECTION).get<string>('inventoryPath') || INVENTORY_FILE_NAME
    );
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
    return vscode.workspace.getConfiguration(SECTION).get<string>('pki.algorithm') || 'ecdsa-p256';
  },
  affectsInventory(e: vscode.ConfigurationChangeEvent): boolean {
    return e.affectsConfiguration(`${SECTION}.inventoryPath`);
  },
};
