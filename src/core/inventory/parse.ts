/**
 * Parses `k3s-etcd.yaml`: YAML syntax, then the shipped JSON Schema, then the rules a schema
 * cannot say (duplicates, member counts). Every problem points at a line and column of the file,
 * so the editor can underline it and the CLI can print `file:line:col path: message`.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, isMap, isPair, isScalar, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { ErrorObject } from 'ajv';
import { DEFAULT_ETCD_VERSION } from '../etcdRelease/version';
import { buildTuning, checkTuning, type RawTuning } from './etcdTuning';
import { backupProblems, buildBackup, type RawBackup } from './backup';
import { validateSchema } from './schema';
import { etcdHosts, hostPort } from './select';
import type {
  Cluster,
  Datastore,
  K3sInstall,
  EtcdInstall,
  Host,
  Inventory,
  InventoryLoadResult,
  KeyAlgorithm,
  Problem,
  Role,
  Severity,
} from './types';

type PathSeg = string | number;

export const DEFAULT_ETCD_DOWNLOAD_URL =
  'https://github.com/etcd-io/etcd/releases/download/{version}/etcd-{version}-linux-{arch}.tar.gz';

/** A cluster's etcd settings with every default the inventory leaves out. */
export function etcdDefaults(clusterName: string, version = DEFAULT_ETCD_VERSION): Cluster['etcd'] {
  return {
    version,
    clientPort: 2379,
    peerPort: 2380,
    install: 'download',
    downloadUrl: DEFAULT_ETCD_DOWNLOAD_URL,
    dataDir: '/var/lib/etcd',
    initialClusterToken: `k3s-etcd-${clusterName}`,
    tuning: {},
  };
}

/** A cluster's K3s settings when the inventory says nothing: online install, no options. */
export function k3sDefaults(baseDir: string): Cluster['k3s'] {
  return {
    install: 'online',
    offlineDir: resolve(baseDir, 'k3s-offline'),
    disable: [],
    tlsSan: [],
  };
}

/** Raw shape after schema validation (defaults not yet applied). */
interface RawHost {
  name: string;
  memberName?: string;
  address: string;
  sans?: string[];
  port?: number;
  user?: string;
  identityFile?: string;
  sshHost?: string;
  proxyJump?: string;
  roles: Role[];
}
interface RawCluster {
  name: string;
  datastore?: Datastore;
  etcd?: RawTuning & {
    version?: string;
    clientPort?: number;
    peerPort?: number;
    metricsPort?: number;
    metricsScheme?: 'http' | 'https';
    tls?: { caFile: string; certFile: string; keyFile: string };
    install?: EtcdInstall;
    uploadPath?: string;
    downloadUrl?: string;
    dataDir?: string;
    initialClusterToken?: string;
  };
  k3s?: {
    version?: string;
    install?: K3sInstall;
    offlineDir?: string;
    disable?: string[];
    writeKubeconfigMode?: string;
    tlsSan?: string[];
  };
  knownHostsFile?: string;
  pki?: {
    dir?: string;
    algorithm?: KeyAlgorithm;
    caValidityDays?: number;
    leafValidityDays?: number;
  };
  backup?: RawBackup;
  hosts: RawHost[];
}

interface RawInventory {
  version: 1;
  clusters: RawCluster[];
}

export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

/** `k3s-etcd.yaml:14:18 clusters[0].hosts[2].address: "10.0.0.999" is not an IP address or hostname` */
export function formatProblem(p: Problem, fileLabel = basename(p.file)): string {
  const where = `${fileLabel}:${p.line}:${p.column}`;
  const prefix = p.severity === 'warning' ? 'warning: ' : '';
  return `${where} ${prefix}${p.path ? `${p.path}: ` : ''}${p.message}`;
}

export function expandPath(p: string, baseDir: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

export async function loadInventoryFile(file: string): Promise<InventoryLoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? `${basename(file)} not found in ${dirname(file)}. Create one with "K3s etcd: Create Inventory" or \`k3s-etcd inventory init\`.`
        : `cannot read ${file}: ${(err as Error).message}`;
    const problem = at(file, 'error', '', message, 1, 1);
    return code === 'ENOENT'
      ? { status: 'missing', file, problems: [problem] }
      : { status: 'invalid', file, problems: [problem] };
  }
  return parseInventory(text, file);
}

function at(
  file: string,
  severity: Severity,
  path: string,
  message: string,
  line: number,
  column: number,
  endLine = line,
  endColumn = column,
): Problem {
  return { severity, file, line, column, endLine, endColumn, path, message };
}

/** Maps offsets and schema paths of one document to 1-based positions. */
class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly file: string,
  ) {}

  pos(offset: number): { line: number; col: number } {
    return this.lines.linePos(offset);
  }

  problemAtRange(
    severity: Severity,
    path: readonly PathSeg[],
    message: string,
    range: readonly [number, number] | undefined,
  ): Problem {
    const [start, end] = range ?? [0, 0];
    const s = this.pos(start);
    const e = this.pos(Math.max(end, start));
    return at(this.file, severity, formatPath(path), message, s.line, s.col, e.line, e.col);
  }

  /** The value node at `path`, or the nearest ancestor that exists. */
  nodeAt(path: readonly PathSeg[]): YamlNode | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true);
      if (node && typeof node === 'object' && 'range' in node) return node as YamlNode;
    }
    return this.doc.contents ?? undefined;
  }

  /** The key node of `key` inside the map at `path`. */
  keyAt(path: readonly PathSeg[], key: string): YamlNode | undefined {
    const parent = this.doc.getIn(path, true);
    if (!isMap(parent)) return undefined;
    const pair = parent.items.find(
      (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key,
    );
    return pair && isScalar(pair.key) ? pair.key : undefined;
  }

  rangeOf(node: YamlNode | undefined): [number, number] | undefined {
    return node?.range ? [node.range[0], node.range[1]] : undefined;
  }

  /** 1-based line where the value at `path` starts. */
  lineOf(path: readonly PathSeg[]): number {
    const r = this.rangeOf(this.nodeAt(path));
    return r ? this.pos(r[0]).line : 1;
  }
}

export function parseInventory(text: string, file: string): InventoryLoadResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const loc = new Locator(doc, lines, file);
  const problems: Problem[] = [];

  for (const err of doc.errors) {
    const message = `invalid YAML: ${err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`;
    problems.push(loc.problemAtRange('error', [], message, err.pos));
  }
  if (problems.length > 0) return { status: 'invalid', file, problems };

  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value == null)) {
    problems.push(
      at(file, 'error', '', 'the file is empty: expected `version: 1` and a `clusters` list', 1, 1),
    );
    return { status: 'invalid', file, problems };
  }

  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const schemaErrors = validateSchema(data);
  if (schemaErrors.length > 0) {
    problems.push(...schemaProblems(schemaErrors, data, loc));
    return { status: 'invalid', file, problems };
  }

  const raw = data as RawInventory;
  problems.push(...semanticProblems(raw, loc));
  if (problems.some((p) => p.severity === 'error')) return { status: 'invalid', file, problems };
  return { status: 'ok', file, inventory: buildInventory(raw, file, loc), problems };
}

/** The object without its undefined properties (so spreading it never overwrites a default). */
function definedOnly<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

function buildInventory(raw: RawInventory, file: string, loc: Locator): Inventory {
  const baseDir = dirname(file);
  const lineOf = (path: PathSeg[]) => loc.lineOf(path);
  const clusters = raw.clusters.map((c, ci): Cluster => ({
    name: c.name,
    datastore: c.datastore ?? 'external-etcd',
    etcd: {
      ...etcdDefaults(c.name, c.etcd?.version),
      ...definedOnly({
        clientPort: c.etcd?.clientPort,
        peerPort: c.etcd?.peerPort,
        metricsPort: c.etcd?.metricsPort,
        metricsScheme: c.etcd?.metricsPort ? (c.etcd.metricsScheme ?? 'http') : undefined,
        install: c.etcd?.install,
        downloadUrl: c.etcd?.downloadUrl,
        dataDir: c.etcd?.dataDir,
        initialClusterToken: c.etcd?.initialClusterToken,
      }),
      ...(c.etcd?.tls
        ? {
            tls: {
              caFile: expandPath(c.etcd.tls.caFile, baseDir),
              certFile: expandPath(c.etcd.tls.certFile, baseDir),
              keyFile: expandPath(c.etcd.tls.keyFile, baseDir),
            },
          }
        : {}),
      ...(c.etcd?.uploadPath ? { uploadPath: expandPath(c.etcd.uploadPath, baseDir) } : {}),
      tuning: buildTuning(c.etcd ?? {}),
    },
    k3s: {
      ...(c.k3s?.version ? { version: c.k3s.version } : {}),
      ...k3sDefaults(baseDir),
      install: c.k3s?.install ?? 'online',
      ...(c.k3s?.offlineDir ? { offlineDir: expandPath(c.k3s.offlineDir, baseDir) } : {}),
      disable: [...(c.k3s?.disable ?? [])],
      ...(c.k3s?.writeKubeconfigMode ? { writeKubeconfigMode: c.k3s.writeKubeconfigMode } : {}),
      tlsSan: [...(c.k3s?.tlsSan ?? [])],
    },
    ...(c.knownHostsFile ? { knownHostsFile: expandPath(c.knownHostsFile, baseDir) } : {}),
    ...(c.backup ? { backup: buildBackup(c.backup, (p) => expandPath(p, baseDir)) } : {}),
    pki: {
      dir: expandPath(c.pki?.dir ?? `pki/${c.name}`, baseDir),
      ...(c.pki?.algorithm ? { algorithm: c.pki.algorithm } : {}),
      caValidityDays: c.pki?.caValidityDays ?? 3650,
      leafValidityDays: c.pki?.leafValidityDays ?? 1825,
    },
    line: lineOf(['clusters', ci]),
    hosts: c.hosts.map((h, hi): Host => {
      const host: Host = {
        name: h.name,
        memberName: h.memberName ?? h.name,
        address: h.address,
        sans: [...(h.sans ?? [])],
        port: h.port ?? 22,
        user: h.user ?? 'root',
        ssh: {
          ...(h.sshHost !== undefined ? { alias: h.sshHost } : {}),
          ...(h.port !== undefined ? { port: h.port } : {}),
          ...(h.user !== undefined ? { user: h.user } : {}),
          ...(h.proxyJump !== undefined ? { proxyJump: h.proxyJump } : {}),
        },
        roles: [...h.roles],
        line: lineOf(['clusters', ci, 'hosts', hi]),
      };
      if (h.identityFile !== undefined) host.identityFile = expandPath(h.identityFile, baseDir);
      return host;
    }),
  }));
  return { file, version: 1, clusters };
}

// ---------------------------------------------------------------------------------------------
// Schema errors, worded for people

function pointerToPath(pointer: string): PathSeg[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function valueAt(data: unknown, path: readonly PathSeg[]): unknown {
  let cur: unknown = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function show(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping (key: value)',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
};

function describeSchemaError(e: ErrorObject, value: unknown): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'format':
      return p['format'] === 'ip-or-hostname'
        ? `${show(value)} is not an IP address or hostname`
        : `${show(value)} is not a valid ${String(p['format'])}`;
    case 'type':
      return `expected ${TYPE_WORDS[String(p['type'])] ?? String(p['type'])}, got ${show(value)}`;
    case 'enum':
      return `${show(value)} is not one of: ${(p['allowedValues'] as unknown[]).map(String).join(', ')}`;
    case 'const':
      return `expected ${JSON.stringify(p['allowedValue'])}, got ${show(value)}`;
    case 'additionalProperties':
      return `unknown key "${String(p['additionalProperty'])}"`;
    case 'required':
      return `missing required key "${String(p['missingProperty'])}"`;
    case 'minimum':
    case 'maximum':
      return `${show(value)} is out of range (${e.keyword === 'minimum' ? 'at least' : 'at most'} ${String(p['limit'])})`;
    case 'minItems':
      return `needs at least ${String(p['limit'])} item${p['limit'] === 1 ? '' : 's'}`;
    case 'minLength':
      return 'must not be empty';
    case 'uniqueItems':
      return `lists ${show((value as unknown[])[Number(p['i'])])} twice`;
    case 'pattern':
      return `${show(value)} is not valid: ${e.parentSchema?.['description'] ?? `expected to match ${String(p['pattern'])}`}`;
    default:
      return e.message ?? 'is not valid';
  }
}

function allowedKeys(e: ErrorObject): string {
  const props = (e.parentSchema?.['properties'] ?? {}) as Record<string, unknown>;
  return Object.keys(props).join(', ');
}

function schemaProblems(errors: ErrorObject[], data: unknown, loc: Locator): Problem[] {
  const seen = new Set<string>();
  const out: Problem[] = [];
  // A bad enum also fails `type` and the like on the same spot: report one message per spot.
  for (const e of errors) {
    const path = pointerToPath(e.instancePath);
    const value = valueAt(data, path);
    let message = describeSchemaError(e, value);
    let range: [number, number] | undefined;
    let reportPath = path;
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as Record<string, unknown>)['additionalProperty']);
      reportPath = [...path, key];
      range = loc.rangeOf(loc.keyAt(path, key));
      message += ` (expected one of: ${allowedKeys(e)})`;
    } else if (e.keyword === 'required') {
      const node = loc.nodeAt(path);
      // Point at the first line of the mapping rather than its whole extent.
      range = node?.range ? [node.range[0], node.range[0]] : undefined;
    } else {
      range = loc.rangeOf(loc.nodeAt(path));
    }
    const key = `${formatPath(reportPath)}|${e.keyword === 'required' || e.keyword === 'additionalProperties' ? message : ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(loc.problemAtRange('error', reportPath, message, range));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rules beyond the schema

function semanticProblems(raw: RawInventory, loc: Locator): Problem[] {
  const out: Problem[] = [];
  const problem = (severity: Severity, path: PathSeg[], message: string) =>
    out.push(loc.problemAtRange(severity, path, message, loc.rangeOf(loc.nodeAt(path))));
  const lineOf = (path: PathSeg[]) => loc.lineOf(path);

  const clusterNames = new Map<string, number>();
  const endpointsSeen = new Map<string, { cluster: number; host: number }>();
  raw.clusters.forEach((c, ci) => {
    const first = clusterNames.get(c.name);
    if (first !== undefined) {
      problem(
        'error',
        ['clusters', ci, 'name'],
        `duplicate cluster name "${c.name}" (first at line ${lineOf(['clusters', first, 'name'])})`,
      );
    } else clusterNames.set(c.name, ci);

    const clientPort = c.etcd?.clientPort ?? 2379;
    const peerPort = c.etcd?.peerPort ?? 2380;
    if (clientPort === peerPort) {
      problem(
        'error',
        ['clusters', ci, 'etcd', 'peerPort'],
        `peerPort must differ from clientPort (both ${clientPort})`,
      );
    }
    const metricsPort = c.etcd?.metricsPort;
    if (metricsPort !== undefined && (metricsPort === clientPort || metricsPort === peerPort)) {
      problem(
        'error',
        ['clusters', ci, 'etcd', 'metricsPort'],
        `metricsPort must differ from clientPort and peerPort (${clientPort}, ${peerPort})`,
      );
    }

    checkTuning(
      c.etcd ?? {},
      {
        ...(c.etcd?.version ? { version: c.etcd.version } : {}),
        k3sOnIt:
          (c.datastore ?? 'external-etcd') === 'external-etcd' &&
          c.hosts.some((h) => h.roles.includes('k3s-server')),
        ...(c.k3s?.version ? { k3sVersion: c.k3s.version } : {}),
      },
      (severity, rel, message) => problem(severity, ['clusters', ci, 'etcd', ...rel], message),
    );

    if (c.etcd?.install === 'upload' && !c.etcd.uploadPath) {
      problem(
        'error',
        ['clusters', ci, 'etcd', 'install'],
        'install: upload needs etcd.uploadPath (a tarball etcd-<version>-linux-<arch>.tar.gz or a folder holding etcd and etcdctl)',
      );
    }

    if (c.backup)
      for (const b of backupProblems(c.backup, c.hosts))
        problem(b.severity, ['clusters', ci, 'backup', ...b.path], b.message);

    const hostNames = new Map<string, number>();
    const memberNames = new Map<string, number>();
    c.hosts.forEach((h, hi) => {
      const hostPath: PathSeg[] = ['clusters', ci, 'hosts', hi];
      const dupHost = hostNames.get(h.name);
      if (dupHost !== undefined) {
        problem(
          'error',
          [...hostPath, 'name'],
          `duplicate host name "${h.name}" in cluster "${c.name}" (first at line ${lineOf(['clusters', ci, 'hosts', dupHost, 'name'])})`,
        );
      } else hostNames.set(h.name, hi);

      if (h.roles.includes('etcd') && dupHost === undefined) {
        const member = h.memberName ?? h.name;
        const dupMember = memberNames.get(member);
        if (dupMember !== undefined && dupMember !== hi) {
          problem(
            'error',
            [...hostPath, h.memberName ? 'memberName' : 'name'],
            `duplicate etcd member name "${member}" in cluster "${c.name}"`,
          );
        } else memberNames.set(member, hi);
      }

      const target = hostPort(h.address.toLowerCase(), h.port ?? 22);
      const prev = endpointsSeen.get(target);
      if (prev) {
        const sameCluster = prev.cluster === ci;
        problem(
          sameCluster ? 'error' : 'warning',
          [...hostPath, 'address'],
          `duplicate address and port ${target} (also host "${raw.clusters[prev.cluster]?.hosts[prev.host]?.name}" at line ${lineOf(['clusters', prev.cluster, 'hosts', prev.host, 'address'])}${sameCluster ? '' : `, cluster "${raw.clusters[prev.cluster]?.name}"`})`,
        );
      } else endpointsSeen.set(target, { cluster: ci, host: hi });

      if (h.roles.includes('k3s-server') && h.roles.includes('k3s-agent')) {
        problem(
          'error',
          [...hostPath, 'roles'],
          'a host is either a K3s server or a K3s agent, not both',
        );
      }
      if (
        (c.datastore ?? 'external-etcd') === 'k3s-embedded-etcd' &&
        h.roles.includes('etcd') &&
        !h.roles.includes('k3s-server')
      ) {
        problem(
          'warning',
          [...hostPath, 'roles'],
          'with k3s-embedded-etcd, etcd members are K3s servers: add the role k3s-server',
        );
      }
    });

    const members = c.hosts.filter((h) => h.roles.includes('etcd')).length;
    if (members === 0) {
      problem(
        'error',
        ['clusters', ci, 'hosts'],
        `cluster "${c.name}" has no host with the role etcd: an etcd datastore needs at least one member`,
      );
    } else if (members % 2 === 0) {
      problem(
        'warning',
        ['clusters', ci, 'hosts'],
        `cluster "${c.name}" has ${members} etcd members: an even number tolerates no more failures than ${members - 1} (quorum ${members / 2 + 1}); use an odd number`,
      );
    }
  });
  return out;
}

/** A one-line summary, used by `inventory validate` and the tree's tooltips. */
export function summarize(inv: Inventory): string {
  const hosts = inv.clusters.reduce((n, c) => n + c.hosts.length, 0);
  const members = inv.clusters.reduce((n, c) => n + etcdHosts(c).length, 0);
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  return `${plural(inv.clusters.length, 'cluster')}, ${plural(hosts, 'host')}, ${plural(members, 'etcd member')}`;
}
