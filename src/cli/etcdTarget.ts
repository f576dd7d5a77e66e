/** The etcd a read-only command talks to: endpoints and TLS from the flags, else the inventory's cluster. */
import { resolve } from 'node:path';
import { DEFAULT_TIMEOUT_MS, type EtcdTls } from '../core/etcd/client';
import { connectionFor } from '../core/etcd/connection';
import type { Cluster } from '../core/inventory/types';
import { clientEndpoints } from '../core/inventory/select';
import { loadValid, selectCluster, UsageError, type Options, type RunContext } from './context';

export const ENDPOINT_OPTIONS: Options = {
  endpoints: { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  timeout: { type: 'string' },
};

export const ENDPOINT_HELP =
  'Endpoints default to every etcd member of the cluster; TLS to etcd.tls in the inventory or the\n' +
  "cluster's admin certificate (pki/<cluster>/client/admin.pem). Override with --endpoints URL,...\n" +
  `and --cacert/--cert/--key. --timeout MS per request (default ${DEFAULT_TIMEOUT_MS}).`;

export interface EtcdTarget {
  endpoints: string[];
  tls?: EtcdTls;
  timeoutMs?: number;
  /** The inventory's cluster, when the endpoints come from it. */
  cluster?: Cluster;
}

/** Endpoints and TLS from the flags, else from the inventory's cluster. */
export async function etcdTarget(ctx: RunContext): Promise<EtcdTarget> {
  const v = ctx.values;
  const files = [v['cacert'], v['cert'], v['key']].filter(
    (x): x is string => typeof x === 'string',
  );
  if (files.length > 0 && files.length < 3)
    throw new UsageError('--cacert, --cert and --key go together');
  const timeout = v['timeout'] !== undefined ? Number(v['timeout']) : undefined;
  if (timeout !== undefined && !(timeout > 0))
    throw new UsageError('--timeout is a number of milliseconds');
  let tls: EtcdTls | undefined =
    files.length === 3
      ? {
          caFile: resolve(ctx.io.cwd, files[0]!),
          certFile: resolve(ctx.io.cwd, files[1]!),
          keyFile: resolve(ctx.io.cwd, files[2]!),
        }
      : undefined;
  let endpoints =
    typeof v['endpoints'] === 'string' ? v['endpoints'].split(',').filter(Boolean) : [];
  let cluster: Cluster | undefined;
  if (endpoints.length === 0) {
    cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    if (tls) {
      endpoints = clientEndpoints(cluster);
    } else {
      const conn = await connectionFor(cluster); // says "generate certificates first" when there are none
      endpoints = conn.endpoints;
      tls = conn.tls;
    }
  }
  return {
    endpoints,
    ...(tls ? { tls } : {}),
    ...(timeout ? { timeoutMs: timeout } : {}),
    ...(cluster ? { cluster } : {}),
  };
}
