/**
 * A small gRPC client for etcd's one-shot reads (health, status, member list, alarms): unary
 * calls over Node's own HTTP/2 and TLS, messages from rpcMessages.ts. It speaks the same wire as
 * etcdctl and etcd3 (the gRPC API, not the JSON gateway: the same answers from etcd 3.4 and 3.5,
 * and the caller's client certificate is the identity etcd's auth sees), without loading gRPC,
 * protobufjs or etcd's .proto files (the performance check's prefix look-up and clean-up
 * delete use it too). Errors read like grpc-js's (`14 UNAVAILABLE: ...`,
 * `4 DEADLINE_EXCEEDED: ...`, Node's TLS and socket messages inside), so `problems.ts` words them
 * the same. Everything else (writes, watches, streams) stays on etcd3 (`client.ts`).
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { EtcdTls } from './client';
import { GRPC_PREFIX_BYTES, decodeGrpcMessage, grpcErrorText, grpcFrame } from './grpcWire';
import { ClusterTls } from './clusterTls';
import {
  decodeAlarms,
  decodeDeleteRange,
  decodeMemberList,
  decodeRange,
  decodeStatus,
  EMPTY_REQUEST,
  encodeDeleteRangeRequest,
  encodeRangeOverRequest,
  encodeRangeRequest,
  type RpcAlarm,
  type RpcKeyValue,
  type RpcMember,
  type RpcStatus,
} from './rpcMessages';

/** The one-shot reads of one endpoint. */
export interface EtcdRpc {
  /** One key (linearizable unless `serializable`). */
  range(key: string, opts?: { serializable?: boolean }): Promise<{ kvs: RpcKeyValue[] }>;
  memberList(): Promise<{ members: RpcMember[] }>;
  status(): Promise<RpcStatus>;
  /** The cluster's active alarms (AlarmRequest GET). */
  alarms(): Promise<{ alarms: RpcAlarm[] }>;
  /**
   * An HTTP GET on the same connection (etcd serves /metrics, /version and /health beside gRPC
   * on its client port): the body of a 200 answer, at most `maxBytes` (default 32 MiB).
   */
  get(path: string, opts?: { maxBytes?: number; timeoutMs?: number }): Promise<Buffer>;
  close(): void;
}

/** Ranges and deletes over [key, rangeEnd): the performance check's prefix and its guard. */
export interface EtcdRangeRpc {
  /** The keys in [key, rangeEnd) (or only their count); `timeoutMs` overrides the client's. */
  rangeOver(
    key: Uint8Array,
    rangeEnd: Uint8Array,
    opts?: { limit?: number; keysOnly?: boolean; countOnly?: boolean; timeoutMs?: number },
  ): Promise<{ kvs: RpcKeyValue[]; count: string }>;
  /** Deletes every key in [key, rangeEnd): how many, at which revision. */
  deleteRange(
    key: Uint8Array,
    rangeEnd: Uint8Array,
    opts?: { timeoutMs?: number },
  ): Promise<{ deleted: string; revision: string }>;
}

export interface RpcOptions {
  /** Dial and per-call deadline (each call's own, from its start). */
  timeoutMs: number;
  tls?: EtcdTls;
}

/** An error as grpc-js words it: `code` the gRPC status, `details` etcd's or the socket's words. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(grpcErrorText(code, details));
    this.name = 'RpcError';
  }
}

/** Largest answer accepted (grpc-js's default receive limit). */
const MAX_MESSAGE = 4 * 1024 * 1024;
/** Largest page a GET takes (etcd's /metrics is about 150 KB). */
const MAX_PAGE = 32 * 1024 * 1024;

/**
 * A client of one endpoint. It connects at once; a call waits for the connection until its own
 * deadline, and fails at once when the connection has failed (as grpc-js without waitForReady).
 * Over TLS the connection is `clusterTls.ts`'s: trusting the cluster's CA only, and no request
 * leaves before the member's certificate passed.
 */
export function openRpc(
  endpoint: string,
  opts: RpcOptions & { clusterTls?: ClusterTls },
): EtcdRpc & EtcdRangeRpc {
  const url = new URL(endpoint);
  const secure = url.protocol === 'https:';
  const authority = `${secure ? 'https' : 'http'}://${url.host}`;
  let lastError: Error | undefined;
  let closed = false;
  let session: ClientHttp2Session | undefined;
  const dialling = new AbortController();
  const noteError = (err: Error) => {
    lastError ??= err;
  };
  const started = (s: ClientHttp2Session): ClientHttp2Session => {
    session = s;
    s.on('error', (err: Error) => {
      lastError = err;
    });
    if (closed) s.destroy();
    return s;
  };
  const tlsFor = !secure
    ? undefined
    : opts.clusterTls
      ? Promise.resolve(opts.clusterTls)
      : opts.tls
        ? ClusterTls.load(opts.tls)
        : undefined;
  const ready: Promise<ClientHttp2Session> = tlsFor
    ? tlsFor
        .then((t) =>
          t.connect(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 443), {
            signal: dialling.signal,
            onError: noteError,
          }),
        )
        .then(
          (socket) => started(connect(authority, { createConnection: () => socket })),
          (err: Error) => {
            lastError ??= err;
            throw err;
          },
        )
    : Promise.resolve(
        started(
          // A TLS alert after the handshake (the server refusing our certificate) arrives on the
          // socket, not the session.
          connect(authority).on('connect', (_s, socket) => socket.on('error', noteError)),
        ),
      );
  ready.catch(() => undefined); // each call reports it

  function unavailable(): RpcError {
    return new RpcError(
      14,
      lastError
        ? `No connection established. Last error: ${lastError.message}`
        : 'Connection dropped',
    );
  }

  /**
   * One request on the session: resolves with the response's headers (trailers merged in) and
   * body once the stream closes; rejects on the deadline, a dropped connection, a stream error,
   * or a body over `maxBytes` (`tooLarge` words it).
   */
  function exchange(
    headers: Record<string, string>,
    body: Buffer | undefined,
    timeout: number,
    maxBytes: number,
    tooLarge: (size: number) => Error,
  ): Promise<{ headers: Record<string, unknown>; data: Buffer }> {
    return new Promise((resolve, reject) => {
      if (closed) return reject(new RpcError(1, 'Call cancelled: the client is closed'));
      if (session?.destroyed) return reject(unavailable());
      let done = false;
      let on: ClientHttp2Session | undefined;
      let stream: ClientHttp2Stream | undefined;
      const chunks: Buffer[] = [];
      const finish = (err: Error | undefined, value?: { headers: Record<string, unknown> }) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        on?.off('close', onClose);
        if (err || !value) {
          if (stream && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
          reject(err ?? unavailable());
        } else resolve({ headers: value.headers, data: Buffer.concat(chunks) });
      };
      // The deadline counts from the call, the wait for the connection included.
      const timer = setTimeout(
        () => finish(new RpcError(4, `Deadline exceeded after ${(timeout / 1000).toFixed(3)}s`)),
        timeout,
      );
      const onClose = () => finish(unavailable());
      ready.then(
        (s) => {
          if (done) return;
          if (s.destroyed) return finish(unavailable());
          on = s;
          s.once('close', onClose);
          const st = s.request(headers, { endStream: body === undefined });
          stream = st;
          let size = 0;
          let got: Record<string, unknown> = {};
          st.on('response', (h) => (got = h));
          st.on('data', (c: Buffer) => {
            size += c.length;
            if (size > maxBytes) finish(tooLarge(size));
            else chunks.push(c);
          });
          st.on('trailers', (t) => (got = { ...got, ...t }));
          st.on('error', (err: Error) => finish(lastError ? unavailable() : err));
          st.on('close', () => finish(undefined, { headers: got }));
          if (body !== undefined) st.end(body);
        },
        () => finish(unavailable()),
      );
    });
  }

  async function unary(path: string, body: Buffer, timeout = opts.timeoutMs): Promise<Buffer> {
    const { headers, data: all } = await exchange(
      {
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(timeout))}m`,
      },
      grpcFrame(body),
      timeout,
      MAX_MESSAGE + GRPC_PREFIX_BYTES,
      (size) => new RpcError(8, `Received message larger than max (${size} vs. ${MAX_MESSAGE})`),
    );
    const status = headers['grpc-status'];
    if (status === undefined) {
      const http = headers[constants.HTTP2_HEADER_STATUS];
      throw http !== undefined && http !== 200
        ? new RpcError(2, `Received HTTP status code ${String(http)}`)
        : unavailable();
    }
    if (Number(status) !== 0)
      throw new RpcError(Number(status), decodeGrpcMessage(headers['grpc-message']));
    if (all.length < GRPC_PREFIX_BYTES) throw new RpcError(13, 'Response has no message');
    if (all[0] !== 0) throw new RpcError(13, 'Compressed response not supported');
    const len = all.readUInt32BE(1);
    if (len > all.length - GRPC_PREFIX_BYTES) throw new RpcError(13, 'Truncated response message');
    return all.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + len);
  }

  const decoded = async <T>(
    path: string,
    body: Buffer,
    decode: (b: Buffer) => T,
    timeoutMs?: number,
  ): Promise<T> => {
    const answer = await unary(path, body, timeoutMs);
    try {
      return decode(answer);
    } catch (err) {
      throw new RpcError(13, `Failed to parse server response: ${(err as Error).message}`);
    }
  };

  return {
    range: (key, o = {}) =>
      decoded('/etcdserverpb.KV/Range', encodeRangeRequest(key, o), decodeRange),
    memberList: () => decoded('/etcdserverpb.Cluster/MemberList', EMPTY_REQUEST, decodeMemberList),
    status: () => decoded('/etcdserverpb.Maintenance/Status', EMPTY_REQUEST, decodeStatus),
    alarms: () => decoded('/etcdserverpb.Maintenance/Alarm', EMPTY_REQUEST, decodeAlarms),
    rangeOver: (key, rangeEnd, o = {}) =>
      decoded(
        '/etcdserverpb.KV/Range',
        encodeRangeOverRequest(key, rangeEnd, o),
        decodeRange,
        o.timeoutMs,
      ),
    deleteRange: (key, rangeEnd, o = {}) =>
      decoded(
        '/etcdserverpb.KV/DeleteRange',
        encodeDeleteRangeRequest(key, rangeEnd),
        decodeDeleteRange,
        o.timeoutMs,
      ),
    async get(path, o = {}) {
      const max = o.maxBytes ?? MAX_PAGE;
      const { headers, data } = await exchange(
        { [constants.HTTP2_HEADER_METHOD]: 'GET', [constants.HTTP2_HEADER_PATH]: path },
        undefined,
        o.timeoutMs ?? opts.timeoutMs,
        max,
        () => new Error(`${endpoint}${path} sent more than ${max} bytes`),
      );
      const http = headers[constants.HTTP2_HEADER_STATUS];
      if (http !== 200) throw new Error(`${endpoint}${path} answered HTTP ${String(http)}`);
      return data;
    },
    close() {
      closed = true;
      dialling.abort();
      session?.destroy();
    },
  };
}

/** Clients for `endpoints`, sharing one `ClusterTls`: the TLS files are read once. */
export async function openRpcs(
  endpoints: readonly string[],
  opts: RpcOptions,
): Promise<Array<EtcdRpc & EtcdRangeRpc>> {
  const clusterTls = opts.tls ? await ClusterTls.load(opts.tls) : undefined;
  return endpoints.map((e) => openRpc(e, { ...opts, ...(clusterTls ? { clusterTls } : {}) }));
}
