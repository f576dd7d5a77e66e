/** The task's terminal: coloured host lines, the dry run, the modal, the real run and its summary. */
import * as vscode from 'vscode';
import { errorMessage } from '../../core/errors';
import { parseMarker } from '../../core/plan/render';
import { summarizeRun, type HostRun } from '../../core/plan/runner';
import { stepProgressText } from '../../core/plan/words';
import type { ExtensionCtx } from '../ctx';
import { withCancellableProgress } from '../progress';
import type { ConfirmedRestore, K3sEtcdTaskDefinition, TaskOperation } from './definition';
import { operationFor } from './operations';

const ESC = '\x1b[';
const colour = (code: number, s: string) => `${ESC}${code}m${s}${ESC}0m`;
const STATUS_COLOUR: Record<string, number> = {
  changed: 33,
  'would-change': 33,
  unchanged: 32,
  ok: 32,
  failed: 31,
  'not-run': 2,
};

/** One output line for the terminal: host prefix, markers coloured, CRLF. */
export function terminalLine(host: string, line: string): string {
  const m = parseMarker(line);
  let text = line;
  if (m?.status) text = colour(STATUS_COLOUR[m.status] ?? 0, line);
  else if (m?.title) text = colour(1, line);
  return `${colour(36, `[${host}]`)} ${text}\r\n`;
}

/**
 * The task's pseudoterminal: each host's lines with step markers; a dry run and a modal first,
 * unless the task was given a confirmed restore; ends with the exit code.
 */
export class ProvisionTerminal implements vscode.Pseudoterminal {
  private readonly write = new vscode.EventEmitter<string>();
  private readonly done = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.write.event;
  readonly onDidClose = this.done.event;
  private readonly abort = new AbortController();
  private readonly input = new vscode.EventEmitter<string>();
  private op: TaskOperation | undefined;

  constructor(
    private readonly ctx: ExtensionCtx,
    private readonly def: K3sEtcdTaskDefinition,
    private readonly confirmed?: ConfirmedRestore,
  ) {}

  open(): void {
    void this.run()
      .finally(() => this.op?.dispose?.())
      .then(
        (code) => this.done.fire(code),
        (err: unknown) => {
          this.write.fire(colour(31, `\r\n${errorMessage(err).replace(/\r?\n/g, '\r\n')}\r\n`));
          this.ctx.log.error(`provision ${this.def.cluster}: ${errorMessage(err)}`);
          this.done.fire(1);
        },
      );
  }

  close(): void {
    this.abort.abort();
    this.op?.dispose?.();
  }

  /** Keystrokes: only a root shell opening here (sudo asking for its password) reads them. */
  handleInput(data: string): void {
    this.input.fire(data);
  }

  private line(host: string, text: string): void {
    this.write.fire(terminalLine(host, text));
  }

  private async run(): Promise<number> {
    const op = await operationFor(this.ctx, this.def, this.confirmed, {
      write: (text) => this.write.fire(text),
      onInput: (listener) => this.input.event(listener),
    });
    this.op = op;
    if (op.confirmed) return this.apply(op);
    this.write.fire(colour(1, `Checking ${op.what}…\r\n`));
    for (const l of op.placement ?? []) this.write.fire(`${l}\r\n`);
    const preview = await op.run(true, {
      signal: this.abort.signal,
      onLine: (host, l) => {
        if (!parseMarker(l)) this.line(host, l);
      },
    });
    for (const r of preview.runs) this.write.fire(`${summaryLine(r)}\r\n`);
    for (const l of preview.lines) this.write.fire(`${l}\r\n`);
    if (preview.runs.some((r) => r.status === 'failed' || r.status === 'cancelled')) return 1;
    const pending = preview.runs.filter((r) => r.status === 'would-change');
    if (pending.length === 0) {
      this.write.fire(colour(32, 'Everything is in place: nothing to change.\r\n'));
      return 0;
    }
    const changes = pending.reduce(
      (a, r) => a + r.steps.filter((s) => s.status === 'would-change').length,
      0,
    );
    const choice = await vscode.window.showInformationMessage(
      `${op.what}: apply?`,
      {
        modal: true,
        detail: [
          op.detail(
            changes,
            pending.map((r) => r.host),
          ),
          ...(op.placement ?? []).filter((l) => !l.startsWith(' ')),
        ].join('\n'),
      },
      op.apply,
    );
    if (choice !== op.apply) {
      this.write.fire('Not applied: nothing changed.\r\n');
      return 1;
    }
    return this.apply(op);
  }

  /** The real run, its summary and exit code. */
  private async apply(op: TaskOperation): Promise<number> {
    if (op.confirmed) this.write.fire(colour(1, `Running ${op.what} (confirmed)…\r\n`));
    const result = await withCancellableProgress(`Running ${op.what}`, (report, signal) => {
      signal.addEventListener('abort', () => this.abort.abort(), { once: true });
      return op.run(false, {
        signal: this.abort.signal,
        onLine: (host, l) => this.line(host, l),
        onStep: (host, s) => {
          if (s.status === 'pending') report(stepProgressText(host, s));
        },
      });
    });
    this.write.fire('\r\n');
    for (const r of result.runs) this.write.fire(`${summaryLine(r)}\r\n`);
    for (const l of result.lines) this.write.fire(`${l}\r\n`);
    void this.ctx.health.refreshAll();
    this.write.fire(
      colour(
        result.ok ? 32 : 31,
        `${result.ok ? 'Done' : 'Failed'}: exit ${result.ok ? 0 : 1}\r\n`,
      ),
    );
    return result.ok ? 0 : 1;
  }
}

function summaryLine(r: HostRun): string {
  const c =
    r.status === 'failed' || r.status === 'cancelled' ? 31 : r.status === 'unchanged' ? 32 : 33;
  return colour(c, summarizeRun(r));
}
