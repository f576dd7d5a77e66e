/**
 * The load's writes on the wire: each write one unary gRPC call `/etcdserverpb.KV/Put` carrying
 * a pre-encoded PutRequest, on a plain node:http2 session per connection (TLS with the client
 * certificate, or h2c for http:// endpoints), the same bytes etcdctl's grpc-go client sends.
 *
 * Why not grpc-js: its per-call stack (interceptors, resolving, retrying and load-balancing
 * calls, metadata objects, filters, a deadline timer) runs for every write, and on a small box
 * where etcd runs beside the checker that per-call CPU is throughput and tail latency. Here a
 * write is one `session.request` plus four listeners shared by all calls (no closure per write).
 */
import * as http2 from 'node:http2';
import type { SecureContext } from 'node:tls';
import { decodeGrpcMessage, grpcErrorText } from '../etcd/grpcWire';

const PUT_HEADERS = {
  ':method': 'POST',
  ':path': '/etcdserverpb.KV/Put',
  'content-type': 'application/grpc',
  te: 'trailers',
};
const REQUEST_OPTIONS = { endStream: false };
/** A dead session is re-opened at most this often; writes in between fail at once. */
const RECONNECT_EVERY_MS = 1000;

/** The client TLS, one secure context shared by every connection (clusterTls.ts verifying()). */
export interface WireTls {
  secureContext: SecureContext;
}

/** A call in flight; {@link PutChannel.cancel} takes it. */
export type PutCall = http2.ClientHttp2Stream;

/** Per-stream state, kept on the stream itself so the listeners can be shared. */
interface CallState<T> {
  token: T;
  channel: PutChannel<T>;
  status: number;
  message: string;
  httpStatus: number;
  error: Error | undefined;
  cancelled: boolean;
}
const STATE = Symbol('k3s-etcd put call');
type Stream<T> = http2.ClientHttp2Stream & { [STATE]: CallState<T> };

function onResponse<T>(this: Stream<T>, headers: http2.IncomingHttpHeaders): void {
  const s = this[STATE];
  s.httpStatus = Number(headers[':status'] ?? 0);
  // Trailers-only: an error answered at once carries its status in the headers.
  const status = headers['grpc-status'];
  if (status !== undefined) {
    s.status = Number(status);
    s.message = decodeGrpcMessage(headers['grpc-message']);
  }
}

function onTrailers<T>(this: Stream<T>, trailers: http2.IncomingHttpHeaders): void {
  const s = this[STATE];
  const status = trailers['grpc-status'];
  if (status !== undefined) {
    s.status = Number(status);
    s.message = decodeGrpcMessage(trailers['grpc-message']);
  }
}

function onError<T>(this: Stream<T>, err: Error): void {
  this[STATE].error ??= err;
}

function onClose<T>(this: Stream<T>): void {
  const s = this[STATE];
  s.channel.answer(s.token, outcome(s, this.rstCode));
}

function outcome<T>(s: CallState<T>, rstCode: number | undefined): Error | null {
  if (s.status === 0) return null;
  if (s.status > 0) return new Error(grpcErrorText(s.status, s.message));
  if (s.cancelled) return new Error(grpcErrorText(1, 'Cancelled on client'));
  if (s.error) return new Error(grpcErrorText(14, s.error.message));
  if (s.httpStatus !== 0 && s.httpStatus !== 200)
    return new Error(grpcErrorText(2, `Received HTTP status code ${s.httpStatus}`));
  return new Error(
    grpcErrorText(13, `the stream closed without a gRPC status (HTTP/2 code ${rstCode ?? '?'})`),
  );
}

/**
 * One HTTP/2 connection to one endpoint carrying Put calls. `answer(token, err)` is called once
 * per {@link put}, with null on success or an Error whose message reads like grpc-js's.
 */
export class PutChannel<T> {
  private session: http2.ClientHttp2Session;
  private openedAt = 0;
  private lastError: Error | undefined;
  /** Resolves when the first connection's handshake is done; rejects when it fails. */
  readonly ready: Promise<void>;

  constructor(
    readonly endpoint: string,
    private readonly tls: WireTls | undefined,
    readonly answer: (token: T, err: Error | null) => void,
  ) {
    this.session = this.open();
    const session = this.session;
    this.ready = new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => reject(err);
      session.once('error', failed);
      session.once('connect', () => {
        session.off('error', failed);
        resolve();
      });
    });
  }

  /** {@link ready}, or a deadline error after `ms`. */
  readyWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`${this.endpoint}: no connection within ${ms} ms (deadline exceeded)`)),
        ms,
      );
    });
    return Promise.race([this.ready, late]).finally(() => clearTimeout(timer));
  }

  private open(): http2.ClientHttp2Session {
    this.openedAt = performance.now();
    const session = http2.connect(this.endpoint, {
      ...(this.tls ?? {}),
      // etcd's grpc-go server states its own limit; this is only the default before it does.
      peerMaxConcurrentStreams: 1000,
    });
    session.on('error', (err: Error) => (this.lastError = err));
    return session;
  }

  /** Sends one gRPC-framed PutRequest (see PutEncoder.nextFrame). */
  put(frame: Buffer, token: T): PutCall | undefined {
    let session = this.session;
    if (session.closed || session.destroyed) {
      if (performance.now() - this.openedAt < RECONNECT_EVERY_MS) {
        this.failSoon(token, this.lastError);
        return undefined;
      }
      session = this.session = this.open();
    }
    let stream: Stream<T>;
    try {
      stream = session.request(PUT_HEADERS, REQUEST_OPTIONS) as Stream<T>;
    } catch (err) {
      this.failSoon(token, err instanceof Error ? err : new Error(String(err)));
      return undefined;
    }
    stream[STATE] = {
      token,
      channel: this,
      status: -1,
      message: '',
      httpStatus: 0,
      error: undefined,
      cancelled: false,
    };
    stream.on('response', onResponse);
    stream.on('trailers', onTrailers);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.resume(); // the PutResponse is not needed
    stream.end(frame);
    return stream;
  }

  /** Cancels a call in flight; it is answered with CANCELLED. */
  cancel(call: PutCall): void {
    const s = (call as Stream<T>)[STATE];
    if (s) s.cancelled = true;
    call.close(http2.constants.NGHTTP2_CANCEL);
  }

  close(): void {
    this.session.close();
  }

  /** Answers after the caller's turn, never from inside put(). */
  private failSoon(token: T, err: Error | undefined): void {
    const e = new Error(grpcErrorText(14, err?.message ?? 'the connection is closed'));
    queueMicrotask(() => this.answer(token, e));
  }
}
