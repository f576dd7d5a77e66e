/**
 * A task's hosts split by where they run: the inventory host this window runs on (any remote
 * kind; `../thisHost.ts`) in the task's own terminal, as root through one sudo that asks there,
 * and the others over SSH from it. One root shell per task: the dry run and the real run share
 * it, so sudo asks once.
 */
import * as vscode from 'vscode';
import type { Cluster, Host } from '../../core/inventory/types';
import type { HostTransport } from '../../core/plan/runner';
import { LocalTransport, type HereHost, type TerminalIo } from '../../core/thisHost/terminal';
import { placementLines } from '../../core/thisHost/words';
import type { ExtensionCtx } from '../ctx';
import { thisHostOf } from '../thisHost';

export interface TaskPlacement {
  /** Set when one of the task's hosts is the one this window runs on. */
  here?: HereHost;
  /** Which hosts run here and which over SSH, and why. */
  lines: string[];
  /** Ends the root shell (the task is over). */
  close(): void;
}

/**
 * A terminal for a command that is not a task (the preview): it opens the first time something
 * is written to it (sudo's prompt; nothing when sudo needs no password) and goes with `dispose`.
 */
function rootTerminal(host: string): TerminalIo & { dispose(): void } {
  const write = new vscode.EventEmitter<string>();
  const input = new vscode.EventEmitter<string>();
  const pending: string[] = [];
  let terminal: vscode.Terminal | undefined;
  let open = false;
  const pty: vscode.Pseudoterminal = {
    onDidWrite: write.event,
    open: () => {
      open = true;
      for (const t of pending.splice(0)) write.fire(t);
    },
    close: () => undefined,
    handleInput: (data) => input.fire(data),
  };
  return {
    write: (text) => {
      if (!terminal) {
        terminal = vscode.window.createTerminal({ name: `K3s etcd: ${host} (sudo)`, pty });
        terminal.show();
        pending.push(`K3s etcd reads ${host} as root: sudo asks here.\r\n`);
      }
      if (open) write.fire(text);
      else pending.push(text);
    },
    onInput: (listener) => input.event(listener),
    dispose: () => {
      terminal?.dispose();
      write.dispose();
      input.dispose();
    },
  };
}

/**
 * Where `hosts` of `cluster` run. `io`: the task's terminal (sudo asks there); without one (a
 * preview) a terminal of its own opens when sudo asks.
 */
export async function placementOf(
  ctx: ExtensionCtx,
  cluster: Cluster,
  hosts: readonly Host[],
  io?: TerminalIo,
  signal?: AbortSignal,
): Promise<TaskPlacement> {
  const decision = await thisHostOf(ctx, cluster, cluster.hosts, signal);
  const lines = placementLines(
    hosts.map((h) => h.name),
    decision,
  );
  const local = decision.local;
  if (!local || !hosts.some((h) => h.name === local)) return { lines, close: () => undefined };
  let shared: LocalTransport | undefined;
  const own = io ? undefined : rootTerminal(local);
  const make = () => new LocalTransport({ label: local, io: io ?? (own as TerminalIo) });
  return {
    lines,
    here: {
      host: local,
      open: async (): Promise<HostTransport> => {
        shared ??= make();
        const t = shared;
        // The engine closes a host's transport after its job; the root shell lives on until
        // the task ends, so the real run does not ask again.
        return {
          label: t.label,
          exec: (c, o) => t.exec(c, o),
          put: (p, s, o) => t.put(p, s, o),
          close: () => undefined,
        };
      },
    },
    close: () => {
      shared?.close();
      own?.dispose();
    },
  };
}
