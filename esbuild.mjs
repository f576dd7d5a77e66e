// One build script, several bundles:
//   dist/extension.js   the extension (node, cjs, `vscode` external)
//   dist/cli.js         the `k3s-etcd` bin (src/cli/bin.ts): runs dist/cliMain.js with V8's
//                       code cache (src/cli/codeCache.ts)
//   dist/cliMain.js     the command line (CommonJS): the command table (names, summaries, usage,
//                       flags), dispatch, and the one-shot commands (LIGHT_FILES), each file's
//                       module run only when one of its commands runs
//   dist/cliCommands.js every other command, required when one of them runs
//   dist/etcd3.js       etcd3 + grpc-js, split out so activation never parses it; loaded on first use
//   dist/perfWorker.js  worker thread of the performance check (its writes and reads over etcd/rpc.ts)
//   dist/x509.js        @peculiar/x509 (+ reflect-metadata), loaded only when certificates are issued
//   dist/ssh2.js        ssh2 (pure JavaScript), loaded on the first SSH connection
//   dist/proto/*.proto  etcd3 reads these at run time
//   dist/webview/*.js   browser code for webviews (+ uplot.css, the charts' stylesheet)
//   out/test/*.js       in-editor test suites (development builds only; never packaged)
// Flags: --production (minify, no source maps), --watch.
import * as esbuild from 'esbuild';
import { chmod, cp, mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import Module from 'node:module';
import { resolve } from 'node:path';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

/**
 * Keep heavy libraries out of the extension and CLI bundles: they `require` them lazily from
 * their own files (etcd3 + gRPC in dist/etcd3.js, @peculiar/x509 in dist/x509.js).
 */
const splitHeavy = {
  name: 'split-heavy',
  setup(build) {
    build.onResolve({ filter: /^etcd3$/ }, () => ({ path: './etcd3.js', external: true }));
    build.onResolve({ filter: /\/x509Vendor$/ }, () => ({ path: './x509.js', external: true }));
    build.onResolve({ filter: /^ssh2$/ }, () => ({ path: './ssh2.js', external: true }));
  },
};

/** etcd3 loads `${__dirname}/../proto/rpc.proto`; in dist/etcd3.js the protos sit in dist/proto. */
const etcd3ProtoPath = {
  name: 'etcd3-proto-path',
  setup(build) {
    build.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const src = await readFile(args.path, 'utf8');
      const patched = src.replace('${__dirname}/../proto/', '${__dirname}/proto/');
      if (patched === src) throw new Error('etcd3 proto path not found: check the etcd3 version');
      return { contents: patched, loader: 'js' };
    });
  },
};

/**
 * The CLI's command table without the commands' code. src/cli/commands.ts is bundled and
 * evaluated here (its modules define commands and do nothing when imported); what dist/cliMain.js
 * gets in its place is each command's name, summary, usage, details, flags and argument count,
 * and a `run` that loads the command's file (LIGHT_FILES from dist/cliMain.js itself, the rest
 * from dist/cliCommands.js).
 */
async function commandTable() {
  const built = await esbuild.build({
    entryPoints: ['src/cli/commands.ts'],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    write: false,
    metafile: true,
    logLevel: 'warning',
  });
  const filename = resolve('src/cli/commands.js');
  const m = new Module(filename);
  m.filename = filename;
  m.paths = Module._nodeModulePaths(resolve('.'));
  m._compile(built.outputFiles[0].text, filename);
  const files = Object.entries(m.exports.COMMAND_FILES).map(([file, commands]) => ({
    file,
    commands: commands.map(({ run, ...meta }) => {
      if (typeof run !== 'function') throw new Error(`${meta.name}: no run()`);
      return meta;
    }),
  }));
  return { files, inputs: Object.keys(built.metafile.inputs).map((f) => resolve(f)) };
}

/**
 * The files whose commands dist/cliMain.js holds itself: the one-shot reads and the inventory's
 * (health, status, members, inventory validate/show/init, etcdctl-env). Every other command is
 * in dist/cliCommands.js, required when one of them runs.
 */
const LIGHT_FILES = ['health', 'inventory', 'etcdctl'];

/** What dist/cliMain.js and dist/cliCommands.js share (one `UsageError`, one `K3sEtcdError`). */
const SHARED = { base: 'src/cli/base', usage: 'src/cli/usage', errors: 'src/core/errors' };
const SHARED_KEY = 'k3s-etcd.cli.shared';

const cliTable = {
  name: 'cli-table',
  setup(build) {
    build.onResolve({ filter: /^\.\/commands$/ }, (args) =>
      args.importer.endsWith('main.ts') ? { path: 'cli-table', namespace: 'cli-table' } : undefined,
    );
    build.onResolve({ filter: /^\.\/cliCommands\.js$/ }, () => ({
      path: './cliCommands.js',
      external: true,
    }));
    build.onLoad({ filter: /.*/, namespace: 'cli-table' }, async () => {
      const { files, inputs } = await commandTable();
      // A light file is required, not imported: esbuild bundles it but runs its module (and what
      // it imports: yaml, the validator, the gRPC client) only when one of its commands runs.
      const loaders = files
        .map(({ file }) =>
          LIGHT_FILES.includes(file)
            ? `  ${JSON.stringify(file)}: () => Object.values(require(${JSON.stringify(`./${file}`)})).find(Array.isArray),`
            : `  ${JSON.stringify(file)}: () => require("./cliCommands.js").COMMAND_FILES[${JSON.stringify(file)}],`,
        )
        .join('\n');
      const contents = `
import * as base from './base';
import * as usage from './usage';
import * as errors from '../core/errors';
globalThis[Symbol.for(${JSON.stringify(SHARED_KEY)})] = { base, usage, errors };
const load = {
${loaders}
};
const FILES = ${JSON.stringify(files)};
/** The command of that name in its file (loaded once). */
function commandIn(file, name) {
  for (const c of load[file]() ?? []) if (c && c.name === name) return c;
  throw new Error('the command "' + name + '" is missing from its bundle: rebuild k3s-etcd');
}
export const COMMAND_FILES = Object.fromEntries(
  FILES.map(({ file, commands }) => [
    file,
    commands.map((meta) => ({ ...meta, run: async (ctx) => commandIn(file, meta.name).run(ctx) })),
  ]),
);
`;
      return { contents, loader: 'js', resolveDir: resolve('src/cli'), watchFiles: inputs };
    });
  },
};

/** In dist/cliCommands.js the shared modules are dist/cliMain.js's (SHARED), set before it loads. */
const sharedWithBin = {
  name: 'shared-with-bin',
  setup(build) {
    const byPath = new Map(Object.entries(SHARED).map(([k, p]) => [resolve(p), k]));
    build.onResolve({ filter: /^\./ }, (args) => {
      const key = byPath.get(resolve(args.resolveDir, args.path).replace(/\.ts$/, ''));
      return key ? { path: key, namespace: 'cli-shared' } : undefined;
    });
    build.onLoad({ filter: /.*/, namespace: 'cli-shared' }, (args) => ({
      contents: `module.exports = globalThis[Symbol.for(${JSON.stringify(SHARED_KEY)})].${args.path};`,
      loader: 'js',
    }));
  },
};

/** Prints errors in the form of the `$esbuild-watch` problem matcher. */
const problemMatcher = {
  name: 'problem-matcher',
  setup(build) {
    build.onStart(() => console.log('[watch] build started'));
    build.onEnd((result) => {
      for (const { text, location } of result.errors) {
        console.error(`✘ [ERROR] ${text}`);
        if (location) console.error(`    ${location.file}:${location.line}:${location.column}:`);
      }
      console.log('[watch] build finished');
    });
  },
};

const node = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: production,
  sourcemap: production ? false : 'linked',
  sourcesContent: false,
  logLevel: 'warning',
  legalComments: 'none',
  plugins: watch ? [problemMatcher] : [],
};

const configs = [
  {
    ...node,
    entryPoints: { extension: 'src/editor/extension.ts' },
    outdir: 'dist',
    external: ['vscode'],
    banner: { js: 'globalThis.__k3sEtcdLoadStart = performance.now();' },
    plugins: [...node.plugins, splitHeavy],
  },
  {
    // The command line: CommonJS (Node 20 caches no ES module's compiled code, and its ES module
    // loader alone costs start-up time), the command table and the light commands.
    ...node,
    entryPoints: { cliMain: 'src/cli/main.ts' },
    outdir: 'dist',
    plugins: [...node.plugins, cliTable, splitHeavy],
  },
  {
    // The bin: runs dist/cliMain.js with V8's code cache (src/cli/codeCache.ts).
    ...node,
    entryPoints: { cli: 'src/cli/bin.ts' },
    outdir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
  },
  {
    // Every other command, required by dist/cliMain.js when one of them runs.
    ...node,
    entryPoints: { cliCommands: 'src/cli/commands.ts' },
    outdir: 'dist',
    plugins: [...node.plugins, sharedWithBin, splitHeavy],
  },
  {
    // The performance check's load runs in this worker thread, started from dist/extension.js
    // and the command line (src/core/perf/perf.ts); etcd3 stays out of it (splitHeavy).
    ...node,
    entryPoints: { perfWorker: 'src/core/perf/worker.ts' },
    outdir: 'dist',
    plugins: [...node.plugins, splitHeavy],
  },
  {
    ...node,
    entryPoints: { etcd3: 'node_modules/etcd3/lib/index.js' },
    outdir: 'dist',
    plugins: [...node.plugins, etcd3ProtoPath],
  },
  {
    ...node,
    entryPoints: { x509: 'src/core/pki/x509Vendor.ts' },
    outdir: 'dist',
  },
  {
    // ssh2 in pure JavaScript: its optional native parts (cpu-features, sshcrypto.node) are
    // required in try/catch and stay out; the JS fallback is the supported path (ssh2#1110).
    ...node,
    entryPoints: { ssh2: 'node_modules/ssh2/lib/index.js' },
    outdir: 'dist',
    external: ['cpu-features', '*.node'],
  },
  {
    ...node,
    platform: 'browser',
    target: 'es2022',
    entryPoints: { overview: 'webview/src/overview.ts', health: 'webview/src/health.ts' },
    outdir: 'dist/webview',
    format: 'esm',
  },
];

if (!production) {
  const suites = {
    'editor-suite': 'test/editor/suite/index.ts',
    'package-suite': 'test/package/suite/index.ts',
  };
  const present = Object.fromEntries(Object.entries(suites).filter(([, p]) => existsSync(p)));
  if (Object.keys(present).length) {
    configs.push({ ...node, entryPoints: present, outdir: 'out/test', external: ['vscode'] });
  }
}

await rm('dist', { recursive: true, force: true });
await mkdir('dist/proto', { recursive: true });
await cp('node_modules/etcd3/proto', 'dist/proto', { recursive: true });
await mkdir('dist/webview', { recursive: true });
// uPlot's stylesheet (legend, cursor), served from dist/webview under the CSP.
await cp('node_modules/uplot/dist/uPlot.min.css', 'dist/webview/uplot.css');
// Codicons for the webviews (font and CSS, served from dist/webview under the CSP).
await mkdir('dist/webview/codicons', { recursive: true });
for (const f of ['codicon.css', 'codicon.ttf'])
  await cp(`node_modules/@vscode/codicons/dist/${f}`, `dist/webview/codicons/${f}`);

if (watch) {
  const contexts = await Promise.all(configs.map((c) => esbuild.context(c)));
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(configs.map((c) => esbuild.build(c)));
  await chmod('dist/cli.js', 0o755);
}
