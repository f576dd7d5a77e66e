// One build script, several bundles:
//   dist/extension.js   the extension (node, cjs, `vscode` external)
//   dist/cli.js         the `k3s-etcd` command line
//   dist/etcd3.js       etcd3 + grpc-js, split out so activation never parses it; loaded on first use
//   dist/perfWorker.js  worker thread of the performance check (loads dist/etcd3.js)
//   dist/x509.js        @peculiar/x509 (+ reflect-metadata), loaded only when certificates are issued
//   dist/ssh2.js        ssh2 (pure JavaScript), loaded on the first SSH connection
//   dist/proto/*.proto  etcd3 reads these at run time
//   dist/webview/*.js   browser code for webviews (+ uplot.css, the charts' stylesheet)
//   out/test/*.js       in-editor test suites (development builds only; never packaged)
// Flags: --production (minify, no source maps), --watch.
import * as esbuild from 'esbuild';
import { cp, mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';

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
    ...node,
    entryPoints: { cli: 'src/cli/main.ts' },
    outdir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
    plugins: [...node.plugins, splitHeavy],
  },
  {
    // The performance check's load runs in this worker thread, started from dist/extension.js
    // and dist/cli.js (src/core/perf/perf.ts); it loads etcd3 from dist/etcd3.js like they do.
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
}
