// @ts-check
/**
 * Can this machine run the lab? Plain JavaScript without dependencies: `npm run lab` asks it
 * (scripts/lab/launch.mjs) before `npm ci` and before any system package is installed, so a
 * machine that cannot run the lab is told why at once. scripts/lab.ts and the tests import the
 * same functions (types in preflight.d.mts).
 */
import { spawnSync } from 'node:child_process';

const NAMES = { darwin: 'macOS', win32: 'Windows', freebsd: 'FreeBSD', openbsd: 'OpenBSD' };

/**
 * Why the lab cannot run here; an empty list when it can. Pure: the facts are arguments.
 * `canInstallNspawn`: systemd-nspawn is missing but apt-get is there, so the lab's own
 * `scripts/install-system-deps.sh` installs it (Debian's systemd-container).
 * @param {{ platform: string, uid: number | undefined, hasNspawn: boolean, canInstallNspawn: boolean }} facts
 * @returns {string[]}
 */
export function labPreflight({ platform, uid, hasNspawn, canInstallNspawn }) {
  if (platform !== 'linux') {
    const name = /** @type {Record<string, string>} */ (NAMES)[platform] ?? platform;
    return [
      `it needs Linux: its edge hosts are Debian containers booted with systemd-nspawn, and this machine runs ${name}.`,
    ];
  }
  const reasons = [];
  if (uid !== 0) {
    reasons.push(
      `it needs root: it mounts the hosts' root file systems, boots them with systemd-nspawn and ` +
        `binds their sshd to 127.0.1.x:22, and you are uid ${uid ?? '?'}. Run it as root ` +
        `(sudo -i, then npm run lab).`,
    );
  }
  if (!hasNspawn && !canInstallNspawn) {
    reasons.push(
      'systemd-nspawn is not installed, and there is no apt-get here to install it ' +
        "(it is Debian's package systemd-container).",
    );
  }
  return reasons;
}

/**
 * The whole refusal: every reason, then how to use the extension with real hosts instead.
 * @param {readonly string[]} reasons
 * @param {{ vsix: string }} opts the VSIX file name `npm run package` makes
 * @returns {string}
 */
export function refusalText(reasons, { vsix }) {
  return [
    'The lab cannot run on this machine:',
    ...reasons.map((r) => `  - ${r}`),
    '',
    'Use the extension with real hosts instead:',
    `  1. Build it:    npm ci && npm run package        (makes ${vsix})`,
    `  2. Install it:  code --install-extension ${vsix}`,
    '  3. In a folder of yours, write k3s-etcd.yaml naming your hosts: for each its address, the',
    '     SSH user and identityFile (examples/edge-lab/k3s-etcd.yaml is a template, and',
    '     "K3s etcd: Create Inventory" writes one). Keys come from ssh-agent, ~/.ssh/config or',
    "     identityFile; host keys are checked against ~/.ssh/known_hosts (or the cluster's",
    '     knownHostsFile), and an unknown one is shown with its fingerprint before it is trusted.',
    '  4. Open the folder in VS Code, click the K3s etcd icon in the activity bar, then',
    '     Generate Certificate Set, Preview Provisioning Plan and Provision etcd.',
    'Only the editor, without hosts (Linux): npm run dev:web',
    '',
  ].join('\n');
}

/**
 * This machine's facts for `labPreflight`.
 * @returns {{ platform: string, uid: number | undefined, hasNspawn: boolean, canInstallNspawn: boolean }}
 */
export function machineFacts() {
  const has = (/** @type {string} */ cmd) =>
    process.platform !== 'win32' &&
    spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
  const hasNspawn = has('systemd-nspawn');
  return {
    platform: process.platform,
    uid: typeof process.getuid === 'function' ? process.getuid() : undefined,
    hasNspawn,
    canInstallNspawn: !hasNspawn && has('apt-get'),
  };
}
