/**
 * Command titles live once, in package.json's `contributes.commands`: messages ("Provision etcd
 * failed: …", "… needs a trusted workspace") take them from the manifest VS Code loaded, without
 * the trailing ellipsis that marks a command that asks for more. Pure, for the manifest test.
 */
import { COMMANDS, type CommandKey } from '../shared/commands';

interface Manifest {
  contributes?: { commands?: Array<{ command?: unknown; title?: unknown }> };
}

export function commandTitles(manifest: unknown): Record<CommandKey, string> {
  const listed = new Map<string, string>();
  for (const c of (manifest as Manifest | undefined)?.contributes?.commands ?? [])
    if (typeof c.command === 'string' && typeof c.title === 'string')
      listed.set(c.command, c.title.replace(/…$/, ''));
  const out = {} as Record<CommandKey, string>;
  for (const key of Object.keys(COMMANDS) as CommandKey[])
    out[key] = listed.get(COMMANDS[key]) ?? COMMANDS[key];
  return out;
}
