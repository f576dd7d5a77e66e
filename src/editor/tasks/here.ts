/**
 * A task's hosts split by where they run: the inventory host this window runs on (any remote
 * kind; `../thisHost.ts`) in the task's own terminal, as root through one sudo that asks there,
 * and the others over SSH from it. One root shell per task: the dry run and the real run share
 * it, so sudo asks once.
 */
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
 * Where `hosts` of `cluster` run. `io`: the task's terminal (sudo asks there); without one (a
 * preview) sudo may not ask, and the host's read says how to run the task instead.
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
  const make = () =>
    new LocalTransport({
      label: local,
      io: io ?? { write: () => undefined, onInput: () => ({ dispose: () => undefined }) },
      ...(io ? {} : { sudo: ['sudo', '-n'], nonInteractive: true }),
    });
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
          put: (p, s) => t.put(p, s),
          close: () => undefined,
        };
      },
    },
    close: () => shared?.close(),
  };
}
