#!/usr/bin/env node
// Checks the import graph of src/ and webview/ (part of `npm run lint`):
//   node scripts/check-layers.mjs          fails on a cycle or an upward edge
//   node scripts/check-layers.mjs --graph  also prints every folder-level edge
//
// Layers, bottom up (a file may import its own folder, and any layer below its own):
//   src/shared                 the floor: the webview protocol and the data it shows
//   src/core base              errors.ts, files/, format/
//   src/core primitives        etcdRelease/ inventory/ pki/ ssh/ etcd/ k3sHost/ pkiHost/ plan/
//                              rolling/ thisHost/
//                              (acyclic between folders; rolling/ runs plans over etcd/)
//   src/core operations        provision/ restore/ repair/ k3s/ migrate/ snapshot/ perf/ metrics/
//                              maintain/ upgrade/ recover/ backup/ moveBack/ embeddedMove/
//                              keyspace/ renew/ rotate/ monitoring/
//                              (each imports primitives only, never another operation; a composed
//                              operation, listed in COMPOSED with the operations it is built
//                              from, may import those and nothing else above the primitives)
//   src/core views             tree/ (what both front ends show; may import operations)
//   src/cli, src/editor        front ends (the core never imports them; they never import each other)
//   webview/                   browser code: src/shared only, never src/core
// Imports are read with TypeScript's own pre-processor (static, dynamic and `require`, type-only
// imports too), and resolved like the bundler does (`./x` is ./x.ts or ./x/index.ts).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const showGraph = process.argv.includes('--graph');

const BASE = ['errors.ts', 'files', 'format'];
const PRIMITIVES = [
  'etcdRelease',
  'inventory',
  'pki',
  'ssh',
  'etcd',
  'k3sHost',
  'pkiHost',
  'plan',
  'rolling',
  'thisHost',
];
const OPERATIONS = [
  'provision',
  'restore',
  'repair',
  'k3s',
  'migrate',
  'snapshot',
  'perf',
  'metrics',
  'maintain',
  'upgrade',
  'keyspace',
  'recover',
  'backup',
  'moveBack',
  'embeddedMove',
  'renew',
  'rotate',
  'monitoring',
];
const VIEWS = ['tree'];
/**
 * Operations built from other operations, each with the ones it runs: repair re-provisions the
 * member (provision) and re-points the K3s servers (k3s); upgrade takes a snapshot (snapshot),
 * checks it against its record (restore's verifySnapshot) and re-provisions every member at each
 * hop's version (provision); recover replaces a member (provision's add and remove) and re-points
 * the K3s servers (k3s), or saves a survivor's snapshot (snapshot) and re-adds the other members
 * as learners (provision) after a lost quorum; moveBack stops K3s (k3s), writes etcd's keys into
 * a new kine database (migrate) and re-points one K3s server to it (k3s); embeddedMove snapshots K3s's embedded etcd
 * (snapshot), restores it into the external members (restore), fingerprints both sides as the
 * SQLite migration does (migrate) and re-points the K3s servers (k3s); renew rolls re-issued
 * member certificates out (provision's member certificate plan) and the K3s datastore client
 * files (k3s); rotate (a CA rotation) re-issues leaves with renew's code and rolls the CA
 * files out the same way (provision, k3s): a composed operation may be built from another
 * composed one (never both ways); monitoring renders the Metrics tab's rule table (metrics) as
 * Prometheus alert rules and a dashboard. A composed operation is imported by
 * nothing in the core but views, and never by the operations it is built from.
 */
const COMPOSED = {
  moveBack: ['k3s', 'migrate'],
  repair: ['provision', 'k3s'],
  upgrade: ['provision', 'snapshot', 'restore'],
  maintain: ['keyspace'],
  recover: ['provision', 'k3s', 'snapshot'],
  embeddedMove: ['k3s', 'restore', 'snapshot', 'migrate'],
  renew: ['provision', 'k3s'],
  rotate: ['renew', 'provision', 'k3s'],
  monitoring: ['metrics'],
};

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** `src/core/etcd/client.ts` → { layer, unit } where unit is the folder checked for cycles. */
function place(rel) {
  const parts = rel.split('/');
  if (parts[0] === 'webview') return { layer: 'webview', unit: 'webview' };
  if (parts[0] !== 'src') return undefined;
  if (parts[1] === 'shared') return { layer: 'shared', unit: 'shared' };
  if (parts[1] === 'cli' || parts[1] === 'editor') return { layer: parts[1], unit: parts[1] };
  if (parts[1] !== 'core') return undefined;
  const top = parts[2] ?? '';
  const unit = `core/${top.replace(/\.ts$/, '')}`;
  if (BASE.includes(top)) return { layer: 'base', unit };
  if (PRIMITIVES.includes(top)) return { layer: 'primitive', unit };
  if (OPERATIONS.includes(top)) return { layer: 'operation', unit };
  if (VIEWS.includes(top)) return { layer: 'view', unit };
  return { layer: 'unknown', unit };
}

const RANK = { shared: 0, base: 1, primitive: 2, operation: 3, view: 4, cli: 5, editor: 5 };

/** Why `from` → `to` is not allowed, or undefined. */
function forbidden(from, to) {
  if (from.unit === to.unit) return undefined;
  if (from.layer === 'unknown' || to.layer === 'unknown')
    return `${from.layer === 'unknown' ? from.unit : to.unit} is in no layer: add it to scripts/check-layers.mjs`;
  if (from.layer === 'webview')
    return to.layer === 'shared' ? undefined : 'the webview imports src/shared only';
  if (to.layer === 'webview') return 'nothing imports the webview';
  if (from.layer === 'cli' || from.layer === 'editor')
    return to.layer === 'cli' || to.layer === 'editor'
      ? 'the CLI and the editor do not import each other'
      : undefined;
  if (to.layer === 'cli' || to.layer === 'editor') return 'the core never imports a front end';
  if (from.layer === 'shared') return 'src/shared imports nothing from src/core';
  if (from.layer === 'operation' && to.layer === 'operation') {
    const [a, b] = [from.unit, to.unit].map((u) => u.replace(/^core\//, ''));
    if (COMPOSED[a]?.includes(b) && !(b in COMPOSED && COMPOSED[b].includes(a))) return undefined;
    return 'an operation never imports another operation (move what they share into a primitive)';
  }
  if (RANK[to.layer] > RANK[from.layer])
    return `upward edge: a ${from.layer} imports a ${to.layer}`;
  return undefined;
}

function resolveImport(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(fromFile), spec);
  for (const c of [`${base}.ts`, `${base}.tsx`, join(base, 'index.ts'), base]) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  if (existsSync(`${base}.d.ts`)) return undefined; // generated declarations
  return undefined;
}

const all = [...files(join(root, 'src')), ...files(join(root, 'webview/src'))];
const edges = new Map(); // file → Set(file)
const problems = [];
for (const file of all) {
  const text = readFileSync(file, 'utf8');
  const info = ts.preProcessFile(text, true, true);
  const targets = new Set();
  for (const { fileName } of info.importedFiles) {
    const to = resolveImport(file, fileName);
    if (!to) {
      if (fileName.startsWith('.') && !existsSync(`${resolve(dirname(file), fileName)}.d.ts`))
        problems.push(`${relative(root, file)}: cannot resolve ${fileName}`);
      continue;
    }
    if (relative(root, to).startsWith('node_modules')) continue;
    targets.add(to);
  }
  edges.set(file, targets);
}

// Layer rules, per edge.
const unitEdges = new Map(); // `a → b` → example
for (const [file, targets] of edges) {
  const from = place(relative(root, file));
  if (!from) continue;
  for (const t of targets) {
    const to = place(relative(root, t));
    if (!to) {
      problems.push(`${relative(root, file)} imports ${relative(root, t)}, outside src/`);
      continue;
    }
    const why = forbidden(from, to);
    if (why) problems.push(`${relative(root, file)} → ${relative(root, t)}: ${why}`);
    if (from.unit !== to.unit) {
      const key = `${from.unit} → ${to.unit}`;
      if (!unitEdges.has(key)) unitEdges.set(key, `${relative(root, file)} → ${relative(root, t)}`);
    }
  }
}

/** Cycles in a graph (Tarjan's strongly connected components of more than one node). */
function cycles(nodes, next) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next(v).has(v)) out.push(scc);
    }
  };
  for (const v of nodes) if (!idx.has(v)) visit(v);
  return out;
}

// No cycle between files, and none between the folders of the core.
for (const scc of cycles([...edges.keys()], (v) => edges.get(v) ?? new Set())) {
  problems.push(`import cycle between files: ${scc.map((f) => relative(root, f)).join(', ')}`);
}
const unitNext = new Map();
for (const key of unitEdges.keys()) {
  const [a, b] = key.split(' → ');
  if (!unitNext.has(a)) unitNext.set(a, new Set());
  unitNext.get(a).add(b);
}
for (const scc of cycles([...unitNext.keys()], (v) => unitNext.get(v) ?? new Set())) {
  const inside = [...unitEdges.entries()]
    .filter(([k]) => scc.includes(k.split(' → ')[0]) && scc.includes(k.split(' → ')[1]))
    .map(([k, ex]) => `    ${k} (${ex})`);
  problems.push(`import cycle between folders ${scc.join(', ')}:\n${inside.join('\n')}`);
}

if (showGraph) for (const [k, ex] of [...unitEdges].sort()) console.log(`${k}    e.g. ${ex}`);
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-layers: ${problems.length} problem(s) in ${all.length} files`);
  process.exit(1);
}
console.log(`check-layers: ${all.length} files, no cycle, no upward edge`);
