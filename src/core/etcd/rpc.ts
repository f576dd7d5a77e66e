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
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { EtcdTls } from './client';
import { GRPC_PREFIX_BYTES, decodeGrpcMessage, grpcErrorText, grpcFrame } from './grpcWire';
import { tlsCredentials } from './client';
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

/**
 * The client TLS of a set of files as one secure context, built once for every endpoint of a
 * call (parsing the key per connection costs more than the handshake on loopback).
 */
export async function secureContextFor(tls: EtcdTls): Promise<SecureContext> {
  const c = await tlsCredentials(tls);
  return createSecureContext({ ca: c.rootCertificate, cert: c.certChain, key: c.privateKey });
}

/**
 * A client of one endpoint. It connects at once; a call waits for the connection until its own
 * deadline, and fails at once when the connection has failed (as grpc-js without waitForReady).
 */
export function openRpc(
  endpoint: string,
  opts: RpcOptions & { secureContext?: SecureContext },
): EtcdRpc & EtcdRangeRpc {
  const url = new URL(endpoint);
  const secure = url.protocol === 'https:';
  let lastError: Error | undefined;
  let closed = false;
  const session: ClientHttp2Session = connect(
    `${secure ? 'https' : 'http'}://${url.host}`,
    secure ? { secureContext: opts.secureContext } : {},
  );
  session.on('error', (err: Error) => {
    lastError = err;
  });
  // A TLS alert after the handshake (the server refusing our certificate) arrives on the socket.
  session.on('connect', (_s, socket) =>
    socket.on('error', (err: Error) => {
      lastError ??= err;
    }),
  );

  function unavailable(): RpcError {
    return new RpcError(
      14,
      lastError
        ? `No connection established. Last error: ${lastError.message}`
        : 'Connection dropped',
    );
  }

  function unary(path: string, body: Buffer, timeout = opts.timeoutMs): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (closed) return reject(new RpcError(1, 'Call cancelled: the client is closed'));
      if (session.destroyed) return reject(unavailable());
      const frame = grpcFrame(body);
      let done = false;
      const finish = (err: Error | undefined, value?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        session.off('close', onClose);
        if (err) {
          if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
          reject(err);
        } else resolve(value ?? Buffer.alloc(0));
      };
      const timer = setTimeout(
        () => finish(new RpcError(4, `Deadline exceeded after ${(timeout / 1000).toFixed(3)}s`)),
        timeout,
      );
      const onClose = () => finish(unavailable());
      session.once('close', onClose);
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(timeout))}m`,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let headers: Record<string, unknown> = {};
      stream.on('response', (h) => (headers = h));
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_MESSAGE + GRPC_PREFIX_BYTES)
          finish(new RpcError(8, `Received message larger than max (${size} vs. ${MAX_MESSAGE})`));
        else chunks.push(c);
      });
      stream.on('trailers', (t) => (headers = { ...headers, ...t }));
      stream.on('error', (err: Error) => finish(lastError ? unavailable() : err));
      stream.on('close', () => {
        if (done) return;
        const status = headers['grpc-status'];
        if (status === undefined) {
          const http = headers[constants.HTTP2_HEADER_STATUS];
          return finish(
            http !== undefined && http !== 200
              ? new RpcError(2, `Received HTTP status code ${String(http)}`)
              : unavailable(),
          );
        }
        if (Number(status) !== 0) {
          const message = decodeGrpcMessage(headers['grpc-message']);
          return finish(new RpcError(Number(status), message));
        }
        const all = Buffer.concat(chunks);
        if (all.length < GRPC_PREFIX_BYTES)
          return finish(new RpcError(13, 'Response has no message'));
        if (all[0] !== 0) return finish(new RpcError(13, 'Compressed response not supported'));
        const len = all.readUInt32BE(1);
        if (len > all.length - GRPC_PREFIX_BYTES)
          return finish(new RpcError(13, 'Truncated response message'));
        finish(undefined, all.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + len));
      });
      stream.end(frame);
    });
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
    close() {
      closed = true;
      session.destroy();
    },
  };
}

/** Clients for `endpoints`, sharing one secure context; the TLS files are read once. */
export async function openRpcs(
  endpoints: readonly string[],
  opts: RpcOptions,
): Promise<Array<EtcdRpc & EtcdRangeRpc>> {
  const secureContext = opts.tls ? await secureContextFor(opts.tls) : undefined;
  return endpoints.map((e) => openRpc(e, { ...opts, ...(secureContext ? { secureContext } : {}) }));
}
