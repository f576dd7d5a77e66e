/**
 * The load's side of the wire: gRPC connections to every endpoint (etcd3 loaded in the worker
 * only), each write a pre-encoded Put on the raw KV method, the clean-up delete of the prefix,
 * and the latency samples.
 */
import type * as Etcd3Module from 'etcd3';
import type { Etcd3, IOptions } from 'etcd3';
import { noop } from 'cockatiel';
import { tlsCredentials } from '../etcd/client';
import type { PerfLoad } from '../../shared/perfTypes';
import type { PerfEngineConfig } from './config';
import { randomFillSync } from 'node:crypto';
import { PERF_PROFILES } from './stats';

export const KEY_BYTES = 256;
export const VALUE_BYTES = 1024;
export const MAX_STREAMS_PER_CONNECTION = 200;
/** After a cancel, writes still in flight get this long before they are cancelled too. */
export const CANCEL_DRAIN_MS = 3000;

export function connectionsPerEndpoint(load: PerfLoad, endpoints: number): number {
  const { clients } = PERF_PROFILES[load];
  return Math.max(2, Math.ceil(clients / (Math.max(1, endpoints) * MAX_STREAMS_PER_CONNECTION)));
}

// ---- connections ----------------------------------------------------------------------------

/** `require`, like client.ts: the bundles map 'etcd3' to the split dist/etcd3.js. */
function loadEtcd3(): typeof Etcd3Module {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('etcd3') as typeof Etcd3Module;
}

export interface Cancellable {
  cancel(): void;
}

export interface Conn {
  endpoint: string;
  client: Etcd3;
  /**
   * Sends one encoded PutRequest; `done` gets null or the gRPC error. Returns the call when it
   * can be cancelled.
   */
  put(message: Buffer, done: (err: unknown) => void): Cancellable | undefined;
}

/** The grpc-js `Client.makeUnaryRequest` of etcd3's KV service client. */
interface UnaryCaller {
  makeUnaryRequest(
    method: string,
    serialize: (m: Buffer) => Buffer,
    deserialize: (b: Buffer) => Buffer,
    argument: Buffer,
    options: object,
    callback: (err: unknown) => void,
  ): Cancellable;
}

const PUT_METHOD = '/etcdserverpb.KV/Put';
/** The message is encoded already; the PutResponse is not needed (grpc-js wants non-null). */
const asIs = (b: Buffer): Buffer => b;
const NO_OPTIONS = {};

/**
 * The KV gRPC client inside a one-host Etcd3 (`pool.hosts[0].getServiceClient('KV')`, etcd3
 * 1.1.2). Calling it with a pre-encoded PutRequest skips protobufjs, cockatiel, etcd3's
 * promises and a deadline timer per call; on a small box that also runs etcd, client CPU per
 * write is throughput. Undefined when etcd3's internals differ: then the public API is used.
 */
function kvCaller(client: Etcd3): UnaryCaller | undefined {
  try {
    const pool = (client as unknown as { pool?: { hosts?: unknown[] } }).pool;
    const host = pool?.hosts?.[0] as { getServiceClient?: (n: string) => unknown } | undefined;
    const kv = host?.getServiceClient?.('KV') as Partial<UnaryCaller> | undefined;
    return typeof kv?.makeUnaryRequest === 'function' ? (kv as UnaryCaller) : undefined;
  } catch {
    return undefined;
  }
}

function putFunction(client: Etcd3, encoder: PutEncoder, timeoutMs: number): Conn['put'] {
  const caller = kvCaller(client);
  if (caller) {
    return (message, done) =>
      caller.makeUnaryRequest(PUT_METHOD, asIs, asIs, message, NO_OPTIONS, done);
  }
  return (message, done) => {
    client.kv
      .put(
        { key: encoder.keyOf(message), value: encoder.value },
        { deadline: Date.now() + timeoutMs },
      )
      .then(
        () => done(null),
        (err: unknown) => done(err ?? new Error('unknown error')),
      );
    return undefined;
  };
}

export async function connect(
  cfg: PerfEngineConfig,
  perEndpoint: number,
  encoder: PutEncoder,
  putTimeoutMs: number,
): Promise<Conn[]> {
  const { Etcd3 } = loadEtcd3();
  let credentials: IOptions['credentials'];
  if (cfg.tls) credentials = await tlsCredentials(cfg.tls);
  const conns: Conn[] = [];
  // Interleaved, so that round-robin over the list alternates endpoints.
  for (let i = 0; i < perEndpoint; i++) {
    for (const endpoint of cfg.endpoints) {
      const options: IOptions = {
        hosts: [endpoint],
        faultHandling: { host: () => noop, global: noop },
        grpcOptions: {
          'grpc.enable_http_proxy': 0,
          // Otherwise grpc-js shares one subchannel (one TCP connection) between channels
          // with the same target and credentials.
          'grpc.use_local_subchannel_pool': 1,
        },
      };
      if (credentials) options.credentials = credentials;
      const client = new Etcd3(options);
      conns.push({ endpoint, client, put: putFunction(client, encoder, putTimeoutMs) });
    }
  }
  return conns;
}

/** The end of a prefix range: the prefix with its last byte below 0xff incremented. */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff (or empty): to the end of the keyspace
}

export function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** A key for messages: printable ASCII as is, other bytes escaped, cut after 60 bytes. */
export function showKey(key: Buffer): string {
  let out = '';
  for (const b of key.subarray(0, 60)) {
    out +=
      b >= 0x20 && b < 0x7f && b !== 0x5c
        ? String.fromCharCode(b)
        : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return key.length > 60 ? `${out}…` : out;
}

// ---- keys and PutRequests -------------------------------------------------------------------

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/**
 * Encoded `PutRequest{key, value}` messages (protobuf fields 1 and 2, length-delimited) with
 * etcdctl's key: the prefix, then a 256-byte buffer holding `binary.PutVarint` of
 * `rand.Int63n(MaxInt64)` (a zig-zag varint, the rest zero); the value is 1 KiB of zeros.
 */
export class PutEncoder {
  readonly value = Buffer.alloc(VALUE_BYTES);
  /** Where the key starts in a message, and its length. */
  readonly keyAt: number;
  readonly keyLength: number;
  private readonly head: Buffer;
  private readonly tail: Buffer;
  private readonly random = Buffer.allocUnsafe(8192);
  private at = this.random.length;

  constructor(private readonly prefix: Buffer) {
    this.keyLength = prefix.length + KEY_BYTES;
    this.head = Buffer.from([0x0a, ...varint(this.keyLength)]);
    this.tail = Buffer.concat([Buffer.from([0x12, ...varint(VALUE_BYTES)]), this.value]);
    this.keyAt = this.head.length;
  }

  next(): Buffer {
    if (this.at + 8 > this.random.length) {
      randomFillSync(this.random);
      this.at = 0;
    }
    const hi31 = this.random.readUInt32LE(this.at) & 0x7fffffff; // int63: top bit clear
    const lo32 = this.random.readUInt32LE(this.at + 4);
    this.at += 8;
    const keyEnd = this.keyAt + this.keyLength;
    const msg = Buffer.allocUnsafe(keyEnd + this.tail.length);
    this.head.copy(msg, 0);
    this.prefix.copy(msg, this.keyAt);
    msg.fill(0, this.keyAt + this.prefix.length, keyEnd);
    this.tail.copy(msg, keyEnd);
    // The zig-zag encoding of a non-negative v is v << 1; then base-128 varint.
    let hi = ((hi31 << 1) | (lo32 >>> 31)) >>> 0;
    let lo = (lo32 << 1) >>> 0;
    let i = this.keyAt + this.prefix.length;
    while (hi !== 0 || lo >= 0x80) {
      msg[i++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    msg[i] = lo;
    return msg;
  }

  /** The key inside a message from next(). */
  keyOf(msg: Buffer): Buffer {
    return msg.subarray(this.keyAt, this.keyAt + this.keyLength);
  }
}

/** A growable array of doubles. */
export class Samples {
  private buf = new Float64Array(4096);
  length = 0;
  push(x: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = x;
  }
  /** A copy, which summarize() may sort. */
  values(): Float64Array {
    return this.buf.slice(0, this.length);
  }
}

/**
 * etcdctl's `Delete(prefix, WithPrefix)` with a 30 s budget, through the first endpoint that
 * answers; then a count under the prefix, and another delete if a late write landed after it.
 */
export async function deletePrefix(
  conns: Conn[],
  prefix: Buffer,
  rangeEnd: Buffer,
  budgetMs: number,
): Promise<{ cleanedUp: boolean; deleted: number; revision?: string; error?: string }> {
  const until = Date.now() + budgetMs;
  let deleted = 0;
  const perEndpoint = new Map<string, Conn>();
  for (const c of conns) if (!perEndpoint.has(c.endpoint)) perEndpoint.set(c.endpoint, c);
  let revision: string | undefined;
  let lastError = 'no endpoint answered';
  for (let round = 0; round < 5 && Date.now() < until; round++) {
    for (const conn of perEndpoint.values()) {
      if (Date.now() >= until) break;
      try {
        const del = await conn.client.kv.deleteRange(
          { key: prefix, range_end: rangeEnd },
          { deadline: until },
        );
        revision = del.header.revision;
        deleted += Number(del.deleted);
        const left = await conn.client.kv.range(
          { key: prefix, range_end: rangeEnd, count_only: true },
          { deadline: until },
        );
        if (Number(left.count) === 0) return { cleanedUp: true, deleted, revision };
        lastError = `${left.count} key(s) were written under the prefix after the delete`;
        break; // next round: delete again
      } catch (err) {
        lastError = `${conn.endpoint}: ${errorText(err)}`;
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    cleanedUp: false,
    deleted,
    ...(revision !== undefined ? { revision } : {}),
    error: lastError,
  };
}
