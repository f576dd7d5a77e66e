/**
 * How the SSH transport asks in the editor: password input boxes (never echoed), secrets kept in
 * VS Code's SecretStorage only when the person agrees (and forgotten when they stop working),
 * stored and read only by the core's id (a host's secrets under its verified host key),
 * and a modal for an unknown host key that shows its SHA256 fingerprint. Nothing secret reaches
 * settings or the log.
 */
import * as vscode from 'vscode';
import { Config } from './config';
import type { SecretRequest, SshPrompts } from '../core/ssh/types';
import { loadSshEnvironment } from '../core/ssh/target';
import type { SshContext } from '../core/ssh/hostSession';
import type { ExtensionCtx } from './ctx';

const KEY_PREFIX = 'k3sEtcd.ssh.';

const KIND_WORDS: Record<SecretRequest['kind'], string> = {
  passphrase: 'key passphrase',
  password: 'SSH password',
  sudo: 'sudo password',
};

export function editorPrompts(ctx: ExtensionCtx): SshPrompts {
  const secrets = ctx.vscodeContext.secrets;
  const fromStore = new Set<string>();
  // One prompt at a time: parallel hosts asking at once would stack input boxes.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Thenable<T> | Promise<T>): Promise<T> => {
    const next = queue.then(f, f);
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    secret: (req) =>
      serial(async () => {
        if (req.attempt === 1) {
          const stored = await secrets.get(KEY_PREFIX + req.id);
          if (stored !== undefined) {
            fromStore.add(req.id);
            return stored;
          }
        }
        fromStore.delete(req.id);
        return vscode.window.showInputBox({
          title: `K3s etcd: ${KIND_WORDS[req.kind]}`,
          prompt: req.attempt > 1 ? `${req.prompt} (the last one was refused)` : req.prompt,
          password: true,
          ignoreFocusOut: true,
        });
      }),
    secretResult: async (req, ok, value) => {
      if (!ok) {
        if (fromStore.delete(req.id)) await secrets.delete(KEY_PREFIX + req.id);
        return;
      }
      if (fromStore.has(req.id)) return;
      // Stored under the core's id, which for a host includes its verified key: it is given back
      // only to a host presenting that key, never to another machine answering to the name.
      const bound = req.hostKey
        ? ` It is given only to this host while it presents the host key ${req.hostKey}.`
        : '';
      const choice = await vscode.window.showInformationMessage(
        `Remember the ${KIND_WORDS[req.kind]} for ${req.subject} in VS Code's secret storage?${bound}`,
        'Remember',
        'Not Now',
      );
      if (choice === 'Remember') await secrets.store(KEY_PREFIX + req.id, value);
    },
    unknownHostKey: (k) =>
      serial(async () => {
        const where = k.port === 22 ? k.host : `[${k.host}]:${k.port}`;
        const choice = await vscode.window.showWarningMessage(
          `The authenticity of host ${where} can't be established.`,
          {
            modal: true,
            detail: `${k.keyType} key fingerprint is ${k.fingerprint}.\n\nCompare it with \`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub\` on the host. Trusting it records the key in ${k.knownHostsFile}.`,
          },
          'Trust and Record',
        );
        ctx.log.info(
          `host key of ${where} (${k.keyType} ${k.fingerprint}): ${choice ? 'trusted and recorded' : 'not trusted'}`,
        );
        return choice === 'Trust and Record';
      }),
  };
}

/**
 * Prompts that never ask: secrets only as stored (the person agreed earlier), unknown host keys
 * refused. For reads nobody asked for, like a host's identity (`thisHost.ts`): a host they
 * cannot reach counts as unread, and the operation itself asks as usual.
 */
export function silentPrompts(ctx: ExtensionCtx): SshPrompts {
  return {
    secret: async (req) =>
      req.attempt === 1 ? ctx.vscodeContext.secrets.get(KEY_PREFIX + req.id) : undefined,
    unknownHostKey: async () => false,
  };
}

export async function editorSshContext(ctx: ExtensionCtx): Promise<SshContext> {
  const timeout = Config.get('sshConnectTimeoutSeconds');
  return {
    env: await loadSshEnvironment(),
    prompts: editorPrompts(ctx),
    timeoutMs: timeout * 1000,
  };
}

/**
 * For reads nobody asked to be prompted for (which host this window is on, whether etcd's unit is
 * on a host): prompts that never ask, and at most 8 s for an unreachable host. A host that needs
 * a password or an unknown key is unread; an operation asks as usual.
 */
export async function quietSshContext(ctx: ExtensionCtx): Promise<SshContext> {
  const base = await editorSshContext(ctx);
  return {
    ...base,
    prompts: silentPrompts(ctx),
    timeoutMs: Math.min(base.timeoutMs ?? 8000, 8000),
  };
}
