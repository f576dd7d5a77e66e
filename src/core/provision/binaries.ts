/**
 * The etcd binaries a member host gets, following the inventory's `etcd.install`: downloaded on
 * the host with the release checksums, uploaded from this machine (a tarball or the binaries,
 * their architecture checked), or the ones already installed; and the plan step installing them.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { K3sEtcdError } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { shellQuote as q } from '../ssh/quote';
import type { Payload, Step } from '../plan/steps';
import { dq } from '../plan/snippets';
import { BIN_DIR, type EtcdArch, type HostFacts } from '../etcd/memberHost';
import { sha256File } from '../files/hash';

const bareVersion = (v: string) => v.replace(/^v/, '');

/** Where the binaries come from, resolved on this machine for one architecture. */
export type BinarySource =
  | { kind: 'download'; url: string; sumsUrl: string; file: string }
  | { kind: 'tarball'; payload: Payload }
  | { kind: 'binaries'; etcd: Payload; etcdctl: Payload }
  | { kind: 'installed'; path: string };

const ELF_MACHINE: Record<number, EtcdArch> = {
  0x3e: 'amd64',
  0xb7: 'arm64',
  0x28: 'arm',
  0x15: 'ppc64le',
  0x16: 's390x',
};

async function elfArch(file: string): Promise<EtcdArch | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(20);
    await fh.read(buf, 0, 20, 0);
    if (buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return ELF_MACHINE[buf[5] === 2 ? buf.readUInt16BE(18) : buf.readUInt16LE(18)];
  } finally {
    await fh.close();
  }
}

/** SHA-256 of a (large) local file, computed once per version of it (path, size, mtime). */
const hashCache = new Map<string, Promise<string>>();
async function hashFile(path: string): Promise<string> {
  const st = await stat(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  let p = hashCache.get(key);
  if (!p) {
    p = sha256File(path).then((r) => r.sha256);
    hashCache.set(key, p);
    p.catch(() => hashCache.delete(key));
  }
  return p;
}

/** Finds the binaries for `arch` following the inventory's `etcd.install`. */
export async function resolveBinaries(
  cluster: Cluster,
  host: Host,
  facts: HostFacts,
): Promise<BinarySource> {
  const version = cluster.etcd.version.startsWith('v')
    ? cluster.etcd.version
    : `v${cluster.etcd.version}`;
  const arch = facts.arch as EtcdArch;
  const tarName = `etcd-${version}-linux-${arch}.tar.gz`;
  if (cluster.etcd.install === 'installed') {
    if (!facts.etcdPath) {
      throw new K3sEtcdError(
        'provision-refused',
        `${host.name}: etcd.install is "installed" but no etcd is installed there. Install etcd ${version}, or set etcd.install to upload or download.`,
      );
    }
    return { kind: 'installed', path: facts.etcdPath };
  }
  if (cluster.etcd.install === 'download') {
    const url = cluster.etcd.downloadUrl
      .replace(/\{version\}/g, version)
      .replace(/\{arch\}/g, arch);
    return {
      kind: 'download',
      url,
      sumsUrl: url.replace(/[^/]*$/, 'SHA256SUMS'),
      file: basename(new URL(url).pathname),
    };
  }
  const path = cluster.etcd.uploadPath;
  if (!path) {
    throw new K3sEtcdError(
      'provision-refused',
      'etcd.install is "upload" but etcd.uploadPath is not set in k3s-etcd.yaml.',
    );
  }
  const st = await stat(path).catch(() => undefined);
  if (!st) {
    throw new K3sEtcdError(
      'provision-refused',
      `etcd.uploadPath ${path} does not exist on this machine.`,
    );
  }
  const tarball = async (file: string): Promise<BinarySource> => ({
    kind: 'tarball',
    payload: {
      name: 'etcd.tar.gz',
      localPath: file,
      sha256: await hashFile(file),
      step: 'binaries',
    },
  });
  if (st.isFile()) {
    const m = /^etcd-(v[\d.]+)-linux-([a-z0-9]+)\.tar\.gz$/.exec(basename(path));
    if (m && m[2] !== arch) {
      throw new K3sEtcdError(
        'provision-refused',
        `${host.name} is ${facts.machine} (${arch}) but etcd.uploadPath is the ${m[2]} release ${basename(path)}: point uploadPath at a folder holding ${tarName}.`,
      );
    }
    return tarball(path);
  }
  const names = await readdir(path);
  if (names.includes(tarName)) return tarball(join(path, tarName));
  if (names.includes('etcd') && names.includes('etcdctl')) {
    const payloads: Payload[] = [];
    for (const name of ['etcd', 'etcdctl']) {
      const file = join(path, name);
      const binArch = await elfArch(file);
      if (binArch !== arch) {
        throw new K3sEtcdError(
          'provision-refused',
          `${file} is ${binArch ? `an ${binArch}` : 'not a Linux'} binary but ${host.name} is ${facts.machine} (${arch}).`,
        );
      }
      payloads.push({ name, localPath: file, sha256: await hashFile(file), step: 'binaries' });
    }
    return { kind: 'binaries', etcd: payloads[0] as Payload, etcdctl: payloads[1] as Payload };
  }
  throw new K3sEtcdError(
    'provision-refused',
    `${path} holds neither ${tarName} nor the etcd and etcdctl binaries.`,
  );
}

export function binaryStep(version: string, src: BinarySource): Step {
  const want = bareVersion(version);
  const etcd = src.kind === 'installed' ? src.path : `${BIN_DIR}/etcd`;
  const check = `[ -x ${q(etcd)} ] && ${q(etcd)} --version 2>/dev/null | grep -qx ${q(`etcd Version: ${want}`)}`;
  const writes = [`${BIN_DIR}/etcd`, `${BIN_DIR}/etcdctl`];
  const verify = `got=$(${q(etcd)} --version 2>/dev/null | sed -n 's/^etcd Version: //p')\n[ "$got" = ${q(want)} ] || fail "the etcd binary reports version \${got:-unknown}, not ${want}: fix etcd.version or the binaries"`;
  const installFrom = (dir: string) =>
    `for b in etcd etcdctl; do\n  f=$(find ${dir} -name "$b" -type f | head -n 1)\n  [ -n "$f" ] || fail "no $b in the release tarball"\n  { cp "$f" ${BIN_DIR}/$b.k3s-etcd-new && chmod 0755 ${BIN_DIR}/$b.k3s-etcd-new && mv -f ${BIN_DIR}/$b.k3s-etcd-new ${BIN_DIR}/$b; } || fail "cannot install $b in ${BIN_DIR} (is the disk full?)"\ndone`;
  switch (src.kind) {
    case 'installed':
      return {
        kind: 'guard',
        id: 'binaries',
        title: `etcd ${want} installed (${etcd})`,
        check,
        message: `"etcd at ${dq(etcd)} is $(${q(etcd)} --version 2>/dev/null | sed -n 's/^etcd Version: //p'), but the inventory asks for ${want}: change etcd.version, or set etcd.install to upload or download"`,
      };
    case 'binaries':
      return {
        kind: 'command',
        id: 'binaries',
        title: `install etcd ${want} (uploaded binaries)`,
        writes,
        check,
        run: `mkdir -p ${BIN_DIR}\n${installFrom('"$STAGE"')}\n${verify}`,
      };
    case 'tarball':
      return {
        kind: 'command',
        id: 'binaries',
        title: `install etcd ${want} (uploaded release tarball)`,
        writes,
        check,
        run: `d=$(mktemp -d)\ntar -xzf "$STAGE/etcd.tar.gz" -C "$d" || fail "cannot unpack the uploaded tarball (is the disk full?)"\nmkdir -p ${BIN_DIR}\n${installFrom('"$d"')}\nrm -rf "$d"\n${verify}`,
      };
    case 'download':
      return {
        kind: 'command',
        id: 'binaries',
        title: `download and install etcd ${want}`,
        writes,
        check,
        run: [
          'd=$(mktemp -d)',
          'fetch() { if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 2 -o "$2" "$1"; elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"; else fail "neither curl nor wget on the host: install one, or set etcd.install: upload"; fi; }',
          `fetch ${q(src.url)} "$d"/${q(src.file)} || fail ${q(`download of ${src.url} failed: check the host's internet access (or proxy), or set etcd.install: upload for offline sites`)}`,
          `fetch ${q(src.sumsUrl)} "$d/SHA256SUMS" || fail ${q(`cannot download ${src.sumsUrl} to check the release`)}`,
          `want=$(grep ${q(` ${src.file}$`)} "$d/SHA256SUMS" | cut -d' ' -f1)`,
          `got=$(sha256sum "$d"/${q(src.file)} | cut -d' ' -f1)`,
          `[ -n "$want" ] && [ "$want" = "$got" ] || fail ${q(`checksum of ${src.file} does not match the release's SHA256SUMS: not installing it`)}`,
          `tar -xzf "$d"/${q(src.file)} -C "$d"`,
          `mkdir -p ${BIN_DIR}`,
          installFrom('"$d"'),
          'rm -rf "$d"',
          verify,
        ].join('\n'),
      };
  }
}
