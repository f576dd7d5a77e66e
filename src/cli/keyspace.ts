/**
 * `k3s-etcd keyspace`: what fills etcd's keyspace (keys and bytes by resource and namespace,
 * the largest keys with their object, leases, revision and compaction, Secrets at rest), read
 * page by page; `--show KEY` shows one key's decoded value (a Secret's metadata only).
 */
import { humanBytes } from '../shared/etcdTypes';
import { answeringClient, KEYSPACE_TIMEOUT_MS } from '../core/keyspace/client';
import { keyspaceText } from '../core/keyspace/render';
import { scanKeyspace } from '../core/keyspace/scan';
import { renderKeyView, showKey } from '../core/keyspace/view';
import { json, UsageError, type Subcommand } from './context';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, etcdTarget } from './etcdTarget';
import { progressLine } from './progressLine';

export const KEYSPACE_COMMANDS: Subcommand[] = [
  {
    name: 'keyspace',
    summary: "What fills etcd's keyspace: keys and bytes by resource and namespace, largest keys",
    usage:
      'k3s-etcd keyspace [--cluster NAME] [--top N] [--prefix P] [--show KEY] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details:
      'Reads every key (or those under --prefix) page by page at one revision from the first member\n' +
      'that answers, and shows keys and bytes (key plus value) by Kubernetes resource\n' +
      '(/registry/<resource>/..., /registry/<group>/<resource>/...) and by namespace, the --top N\n' +
      "largest keys (default 20) with each object's apiVersion, kind, namespace, name and creation\n" +
      'time decoded from its envelope, the leases holding most keys with their TTL, the revision and\n' +
      'compaction state, and whether Secrets are encrypted at rest (k8s:enc:) or in plain text.\n' +
      "Values are sized and dropped page by page; a Secret's data is never shown.\n" +
      "--show KEY shows one key's value decoded (JSON as JSON; a Secret: metadata only); exit 1\n" +
      'when there is no such key.\n' +
      `${ENDPOINT_HELP}\nHere --timeout defaults to ${KEYSPACE_TIMEOUT_MS} (a page of 2 MiB from a busy member).`,
    options: {
      ...ENDPOINT_OPTIONS,
      top: { type: 'string' },
      prefix: { type: 'string' },
      show: { type: 'string' },
    },
    async run(ctx) {
      const top = ctx.values['top'] === undefined ? 20 : Number(ctx.values['top']);
      if (!Number.isInteger(top) || top < 0 || top > 1000)
        throw new UsageError('--top is a number of keys from 0 to 1000');
      const showKeyName = ctx.values['show'];
      const target = await etcdTarget(ctx);
      const { client } = await answeringClient(target.endpoints, {
        ...(target.tls ? { tls: target.tls } : {}),
        ...(target.timeoutMs ? { timeoutMs: target.timeoutMs } : {}),
      });
      try {
        if (typeof showKeyName === 'string') {
          const view = await showKey(client, showKeyName);
          if (ctx.global.json) json(ctx, view);
          else ctx.io.out(renderKeyView(view));
          return view.found ? 0 : 1;
        }
        const prefix = typeof ctx.values['prefix'] === 'string' ? ctx.values['prefix'] : undefined;
        const line = progressLine(ctx.global.json);
        const report = await scanKeyspace(client, {
          top,
          ...(prefix ? { prefix } : {}),
          onProgress: (p) => line.update(`Read ${p.keys} keys, ${humanBytes(p.bytes)}...`),
        });
        line.done();
        if (ctx.global.json) json(ctx, report);
        else ctx.io.out(keyspaceText(report, { top }));
        return 0;
      } finally {
        client.close();
      }
    },
  },
];
