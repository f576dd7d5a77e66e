/**
 * When VS Code is connected to an edge host with Remote-SSH, the extension (a workspace
 * extension) runs on that host: the host is provisioned in its own terminal, with the same
 * script, instead of over SSH to itself.
 */
import type { Host } from '../inventory/types';
import { shellQuote as q } from '../ssh/quote';

export interface LocalIdentity {
  hostname: string;
  /** Addresses of this machine's interfaces. */
  addresses: string[];
}

/** Whether `host` of the inventory is the machine we run on. */
export function isThisHost(host: Host, me: LocalIdentity): boolean {
  const name = me.hostname.toLowerCase();
  const short = name.split('.')[0];
  const addr = host.address.toLowerCase();
  if (/^127\./.test(addr) || addr === '::1' || addr === 'localhost') return false;
  return (
    me.addresses.some((a) => a.toLowerCase() === addr) ||
    addr === name ||
    (short !== undefined && addr === short) ||
    host.name.toLowerCase() === name ||
    host.name.toLowerCase() === short
  );
}

/** The shell command a terminal runs for a script written to `scriptPath` (sudo asks there). */
export function terminalCommand(scriptPath: string, stage: string, dryRun: boolean): string {
  const env = `DRY_RUN=${dryRun ? 1 : 0} STAGE=${q(stage)}`;
  return `if [ "$(id -u)" = 0 ]; then env ${env} sh ${q(scriptPath)}; else sudo env ${env} sh ${q(scriptPath)}; fi`;
}
