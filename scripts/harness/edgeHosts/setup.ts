/**
 * One edge host's identity and users: hostname, /etc/hosts, machine-id, sshd and root's keys
 * written into its root before the boot, and the non-root users made inside the running host.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { must, shq } from './exec';
import type { Bridge } from './network';
import type { EdgeHostSpec } from './types';

export interface HostConfig {
  spec: EdgeHostSpec;
  /** The spec's address, or the one given for it on the bridge. */
  address: string;
  /** network 'bridge': the bridge; undefined for 'shared'. */
  bridge: Bridge | undefined;
  rootfs: string;
  runId: string;
  authorizedKeys: string[];
  sudoUser: { name: string; password: string };
  nopasswdUser: { name: string; password?: string } | undefined;
  rootMode: 'auto' | 'overlay' | 'copy';
  deadline: number;
}

/** The host's /etc/hosts: localhost, and its name on `address`. */
export function hostsFile(name: string, address: string): string {
  return `127.0.0.1\tlocalhost\n${address}\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
}

/** Host identity and sshd/root configuration, written from outside before the boot. */
export async function configureRoot(root: string, cfg: HostConfig): Promise<void> {
  const { name } = cfg.spec;
  const { address } = cfg;
  const etc = (p: string) => join(root, 'etc', p);
  await writeFile(etc('hostname'), `${name}\n`);
  await writeFile(etc('hosts'), hostsFile(name, address));
  await writeFile(etc('machine-id'), `${randomBytes(16).toString('hex')}\n`);
  await writeFile(
    etc('ssh/sshd_config.d/lab.conf'),
    [
      ...(cfg.bridge
        ? [
            '# k3s-etcd edge-host harness: this host has its own network namespace on a private',
            '# bridge, so sshd listens on every address and keeps answering after an address change.',
            'ListenAddress 0.0.0.0',
          ]
        : [
            '# k3s-etcd edge-host harness: this host shares the machine network, so sshd keeps to its',
            '# own loopback address.',
            `ListenAddress ${address}`,
          ]),
      'PasswordAuthentication yes',
      'PermitRootLogin prohibit-password',
      '',
    ].join('\n'),
  );
  // Fresh host keys for this host (the cached root has none).
  for (const f of readdirSync(etc('ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(etc(`ssh/${f}`), { force: true });
  }
  await must('ssh-keygen', ['-A', '-f', root]);
  const sshDir = join(root, 'root/.ssh');
  await mkdir(sshDir, { recursive: true });
  await chmod(sshDir, 0o700);
  await writeFile(
    join(sshDir, 'authorized_keys'),
    cfg.authorizedKeys.map((k) => `${k.trim()}\n`).join(''),
    {
      mode: 0o600,
    },
  );
  await chmod(join(sshDir, 'authorized_keys'), 0o600);
}

/** The non-root users, made inside the running host with its own useradd/chpasswd/visudo. */
export function usersScript(cfg: HostConfig): { script: string; input: string } {
  const keys = cfg.authorizedKeys.map((k) => shq(k.trim())).join(' ');
  const lines = ['set -eu'];
  const sudoers: string[] = [];
  let input = '';
  const users: { name: string; password?: string; nopasswd: boolean }[] = [
    { ...cfg.sudoUser, nopasswd: false },
  ];
  if (cfg.nopasswdUser) users.push({ ...cfg.nopasswdUser, nopasswd: true });
  for (const u of users) {
    const n = shq(u.name);
    lines.push(
      `id -u ${n} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group ${n}`,
      `install -d -m 0700 -o ${n} -g ${n} /home/${u.name}/.ssh`,
      `printf '%s\\n' ${keys} > /home/${u.name}/.ssh/authorized_keys`,
      `chown ${n}:${n} /home/${u.name}/.ssh/authorized_keys`,
      `chmod 0600 /home/${u.name}/.ssh/authorized_keys`,
    );
    if (u.password !== undefined) input += `${u.name}:${u.password}\n`;
    sudoers.push(
      u.nopasswd
        ? `${u.name} ALL=(ALL:ALL) NOPASSWD: ALL`
        : `Defaults:${u.name} timestamp_timeout=0\n${u.name} ALL=(ALL:ALL) ALL`,
    );
  }
  if (input) lines.push('chpasswd'); // reads name:password lines from stdin
  lines.push(
    `printf '%s\\n' ${sudoers.map(shq).join(' ')} > /etc/sudoers.d/k3s-etcd-lab`,
    'chmod 0440 /etc/sudoers.d/k3s-etcd-lab',
    'visudo -c -q',
  );
  return { script: lines.join('\n'), input };
}
