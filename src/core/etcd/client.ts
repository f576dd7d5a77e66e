/**
 * One place that creates etcd3 clients. etcd3 (and grpc-js, protobufjs) is heavy, so it is
 * imported only here and only when a command needs it; activation never loads it.
 */
import { readFile } from 'node:fs/promises';
import type * as Etcd3Module from 'etcd3';
import type { Etcd3, IOptions } from 'etcd3';

/** Client TLS from files (the inventory, or the generated admin certificate). */
export interface EtcdTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Client TLS held in memory only: K3s's own etcd certificates read from a host over SSH, which
 * never land in the workspace. `source` says where they came from, for messages.
 */
export interface EtcdTlsPem {
  ca: string;
  cert: string;
  key: string;
  source: string;
}

export type EtcdTls = EtcdTlsFiles | EtcdTlsPem;

/** The gRPC credentials for `tls`, reading the files when they are files. */
export async function tlsCredentials(
  tls: EtcdTls,
): Promise<{ rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer }> {
  if ('ca' in tls) {
    return {
      rootCertificate: Buffer.from(tls.ca),
      certChain: Buffer.from(tls.cert),
      privateKey: Buffer.from(tls.key),
    };
  }
  const [rootCertificate, certChain, privateKey] = await Promise.all([
    readFile(tls.caFile),
    readFile(tls.certFile),
    readFile(tls.keyFile),
  ]);
  return { rootCertificate, certChain, privateKey };
}

/** Where the client certificate comes from, for messages. */
export function tlsCertSource(tls: EtcdTls): string {
  return 'ca' in tls ? tls.source : tls.certFile;
}

export interface EtcdClientOptions {
  /** Dial and per-request deadline. */
  timeoutMs?: number;
  tls?: EtcdTls;
  /**
   * The largest reply taken (gRPC's default is 4 MiB): raised only where a single value may
   * be larger, a cluster whose --max-request-bytes lets it store one.
   */
  maxReceiveBytes?: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;

/** gRPC's default limit on a reply's size. */
export const GRPC_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024;

/**
 * `require`, not `import()`: the bundles keep etcd3 in its own file (dist/etcd3.js), and a
 * dynamic import of a CommonJS file makes Node run its ESM lexer over 500 KB (~90 ms).
 */
function loadEtcd3(): typeof Etcd3Module {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('etcd3') as typeof Etcd3Module;
}

/** A client bound to exactly one endpoint, with retries and circuit breakers off (probes fail fast). */
export async function createEndpointClient(
  endpoint: string,
  opts: EtcdClientOptions = {},
): Promise<Etcd3> {
  const { Etcd3 } = loadEtcd3();
  const { noop } = await import('cockatiel');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const options: IOptions = {
    hosts: [endpoint],
    dialTimeout: timeoutMs,
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    // LAN etcd must never go through an HTTP proxy picked up from the environment.
    grpcOptions: {
      'grpc.enable_http_proxy': 0,
      ...(opts.maxReceiveBytes ? { 'grpc.max_receive_message_length': opts.maxReceiveBytes } : {}),
    },
  };
  if (opts.tls) options.credentials = await tlsCredentials(opts.tls);
  return new Etcd3(options);
}

/** Converts etcd3's decimal uint64 string to etcdctl's hex form. */
export function memberIdToHex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

/** Converts etcdctl's hex member id to etcd3's decimal uint64 string. */
export function memberIdFromHex(hex: string): string {
  return BigInt(`0x${hex}`).toString(10);
}
