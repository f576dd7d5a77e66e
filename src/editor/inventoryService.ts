/**
 * Owns the inventory as the editor sees it: loads it (core parser), reloads on file changes
 * (debounced, newest load wins), publishes diagnostics for the YAML editor (also for unsaved
 * edits), and sets the `k3sEtcd.inventoryPresent` context key for welcome content and menus.
 */
import * as vscode from 'vscode';
import { errorMessage } from '../core/errors';
import { loadInventoryFile, parseInventory } from '../core/inventory/parse';
import type { InventoryLoadResult, Problem } from '../core/inventory/types';
import { readIndex } from '../core/pki/store';
import { rotationProgress, type RotationProgress } from '../core/rotate/state';
import type { PkiIndexes } from '../core/tree/model';
import { CONTEXT_KEYS } from '../shared/commands';
import { Config } from './config';

const RELOAD_DEBOUNCE_MS = 150;
const EDIT_DEBOUNCE_MS = 300;

export class InventoryService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<InventoryLoadResult>();
  readonly onDidChange = this.changed.event;

  private readonly diagnostics = vscode.languages.createDiagnosticCollection('k3s-etcd');
  private readonly disposables: vscode.Disposable[] = [this.changed, this.diagnostics];
  private watcher: vscode.FileSystemWatcher | undefined;
  private pkiWatchers: vscode.FileSystemWatcher[] = [];
  private indexes: PkiIndexes = new Map();
  private rotationStates: ReadonlyMap<string, RotationProgress | undefined> = new Map();
  private result: InventoryLoadResult | undefined;
  private latest: Promise<InventoryLoadResult> | undefined;
  private generation = 0;
  private reloadTimer: NodeJS.Timeout | undefined;
  private editTimer: NodeJS.Timeout | undefined;
  private firstLoad: Promise<InventoryLoadResult> | undefined;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** Starts watching and loads once. */
  start(): void {
    this.watch();
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (Config.affectsInventory(e)) {
          this.watch();
          void this.reload();
        }
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => {
        this.watch();
        void this.reload();
      }),
      vscode.workspace.onDidChangeTextDocument((e) => this.onEdit(e.document)),
      vscode.workspace.onDidCloseTextDocument((doc) => {
        if (doc.uri.fsPath === this.file()) this.scheduleReload();
      }),
    );
    this.firstLoad = this.reload();
  }

  file(): string | undefined {
    return Config.inventoryFile();
  }

  current(): InventoryLoadResult | undefined {
    return this.result;
  }

  /** Each cluster's certificate manifest (pki/<cluster>/index.json), as of the last load. */
  pkiIndexes(): PkiIndexes {
    return this.indexes;
  }

  /** Each cluster's CA rotation under way (rotation.json), as of the last load. */
  rotations(): ReadonlyMap<string, RotationProgress | undefined> {
    return this.rotationStates;
  }

  /** Resolves with the first load's result (or the current one, after that). */
  whenLoaded(): Promise<InventoryLoadResult> {
    return this.result ? Promise.resolve(this.result) : (this.firstLoad ?? this.reload());
  }

  /**
   * Reads the inventory again. Loads can overlap (a file saved while the tree refreshes): each
   * caller gets the result of the newest load, and an older load never overwrites a newer one.
   */
  reload(): Promise<InventoryLoadResult> {
    const generation = ++this.generation;
    const file = this.file();
    const load: Promise<InventoryLoadResult> = (async () => {
      if (!file) {
        return {
          status: 'missing',
          file: '',
          problems: [],
        } satisfies InventoryLoadResult;
      }
      try {
        const result = await loadInventoryFile(file);
        if (result.status === 'ok') {
          // Each cluster's manifest and rotation state, read together.
          const read = await Promise.all(
            result.inventory.clusters.map(async (c) => ({
              name: c.name,
              index: await readIndex(c.pki.dir),
              rotation: await rotationProgress(c),
            })),
          );
          if (generation === this.generation) {
            this.indexes = new Map(read.map((r) => [r.name, r.index]));
            this.rotationStates = new Map(read.map((r) => [r.name, r.rotation]));
          }
        }
        return result;
      } catch (err) {
        this.log.error(`Loading ${file} failed`, err);
        const problem: Problem = {
          severity: 'error',
          file,
          line: 1,
          column: 1,
          endLine: 1,
          endColumn: 1,
          path: '',
          message: `cannot load the inventory: ${errorMessage(err)}`,
        };
        return { status: 'invalid', file, problems: [problem] } satisfies InventoryLoadResult;
      }
    })();
    this.latest = load;
    return load.then((result) => {
      if (generation === this.generation) this.apply(result);
      // A newer load started meanwhile: hand out its result instead.
      return generation === this.generation || !this.latest ? result : this.latest;
    });
  }

  scheduleReload(): void {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => void this.reload(), RELOAD_DEBOUNCE_MS);
  }

  dispose(): void {
    clearTimeout(this.reloadTimer);
    clearTimeout(this.editTimer);
    this.watcher?.dispose();
    for (const w of this.pkiWatchers) w.dispose();
    for (const d of this.disposables) d.dispose();
  }

  private watch(): void {
    this.watcher?.dispose();
    this.watcher = undefined;
    const file = this.file();
    if (!file) return;
    const uri = vscode.Uri.file(file);
    const pattern = new vscode.RelativePattern(
      vscode.Uri.joinPath(uri, '..'),
      uri.path.split('/').pop() ?? '',
    );
    this.watcher = vscode.workspace.createFileSystemWatcher(pattern);
    this.watcher.onDidCreate(() => this.scheduleReload());
    this.watcher.onDidChange(() => this.scheduleReload());
    this.watcher.onDidDelete(() => this.scheduleReload());
  }

  /**
   * Certificate commands write index.json, a CA rotation rotation.json; the tree follows both,
   * also when they change outside.
   */
  private watchPki(result: InventoryLoadResult): void {
    for (const w of this.pkiWatchers) w.dispose();
    this.pkiWatchers = [];
    if (result.status !== 'ok') return;
    for (const c of result.inventory.clusters) {
      const w = vscode.workspace.createFileSystemWatcher(
        new vscode.RelativePattern(vscode.Uri.file(c.pki.dir), '{index.json,rotation.json}'),
      );
      w.onDidCreate(() => this.scheduleReload());
      w.onDidChange(() => this.scheduleReload());
      w.onDidDelete(() => this.scheduleReload());
      this.pkiWatchers.push(w);
    }
  }

  private apply(result: InventoryLoadResult): void {
    const dirsChanged =
      result.status !== this.result?.status ||
      (result.status === 'ok' &&
        this.result?.status === 'ok' &&
        result.inventory.clusters.map((c) => c.pki.dir).join('\0') !==
          this.result.inventory.clusters.map((c) => c.pki.dir).join('\0'));
    this.result = result;
    if (dirsChanged) this.watchPki(result);
    void vscode.commands.executeCommand(
      'setContext',
      CONTEXT_KEYS.inventoryPresent,
      result.status !== 'missing',
    );
    this.publish(result.file, result.status === 'missing' ? [] : result.problems);
    const errors = result.problems.filter((p) => p.severity === 'error').length;
    this.log.info(
      `Inventory ${result.file || '(no folder open)'}: ${result.status}${errors ? `, ${errors} error(s)` : ''}`,
    );
    this.changed.fire(result);
  }

  /** Unsaved edits get diagnostics too; the tree follows the saved file. */
  private onEdit(doc: vscode.TextDocument): void {
    if (doc.uri.scheme !== 'file' || doc.uri.fsPath !== this.file() || !doc.isDirty) return;
    clearTimeout(this.editTimer);
    this.editTimer = setTimeout(() => {
      const result = parseInventory(doc.getText(), doc.uri.fsPath);
      this.publish(doc.uri.fsPath, result.problems);
    }, EDIT_DEBOUNCE_MS);
  }

  private publish(file: string, problems: readonly Problem[]): void {
    this.diagnostics.clear();
    if (!file) return;
    const diags = problems.map((p) => {
      const range = new vscode.Range(
        p.line - 1,
        p.column - 1,
        p.endLine - 1,
        Math.max(p.endColumn - 1, p.column),
      );
      const d = new vscode.Diagnostic(
        range,
        p.path ? `${p.path}: ${p.message}` : p.message,
        p.severity === 'error'
          ? vscode.DiagnosticSeverity.Error
          : vscode.DiagnosticSeverity.Warning,
      );
      d.source = 'k3s-etcd';
      return d;
    });
    this.diagnostics.set(vscode.Uri.file(file), diags);
  }
}
