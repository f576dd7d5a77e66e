/**
 * The load's side of the wire: write connections to every endpoint (wire.ts) and a small gRPC
 * client per endpoint for the prefix check and the clean-up (etcd/rpc.ts: neither etcd3 nor
 * grpc-js is loaded by the check), the pre-encoded PutRequests, the clean-up delete of the
 * prefix, and the latency samples.
 */
import { ClusterTls } from '../etcd/clusterTls';
import { openRpc, type EtcdRangeRpc, type EtcdRpc } from '../etcd/rpc';

type Client = EtcdRpc & EtcdRangeRpc;
import type { PerfLoad } from '../../shared/perfTypes';
import type { PerfEngineConfig } from './config';
import { randomFillSync } from 'node:crypto';
import { PERF_PROFILES } from './stats';
import { GRPC_PREFIX_BYTES } from '../etcd/grpcWire';
import { PutChannel } from './wire';

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

export interface Conn<T = unknown> {
  endpoint: string;
  /** The endpoint's read/delete client (shared by its connections): prefix check, clean-up. */
  client: Client;
  /** The connection that carries the writes. */
  channel: PutChannel<T>;
}

/**
 * `perEndpoint` write connections to every endpoint, interleaved so that round-robin over the
 * list alternates endpoints, and one rpc client per endpoint for everything but the writes
 * (its calls' deadline `rpcTimeoutMs` unless a call says otherwise); the TLS files are read and
 * parsed once for all of them. `answer` gets every write's outcome (wire.ts).
 */
export async function connect<T>(
  cfg: PerfEngineConfig,
  perEndpoint: number,
  answer: (token: T, err: Error | null) => void,
  rpcTimeoutMs = 30_000,
): Promise<Conn<T>[]> {
  const clusterTls = cfg.tls ? await ClusterTls.load(cfg.tls) : undefined;
  const wireTls = clusterTls ? { secureContext: clusterTls.verifying() } : undefined;
  const clients = new Map<string, Client>();
  for (const endpoint of cfg.endpoints)
    clients.set(
      endpoint,
      openRpc(endpoint, { timeoutMs: rpcTimeoutMs, ...(clusterTls ? { clusterTls } : {}) }),
    );
  const conns: Conn<T>[] = [];
  for (let i = 0; i < perEndpoint; i++) {
    for (const [endpoint, client] of clients) {
      const channel = new PutChannel<T>(endpoint, wireTls, answer);
      channel.ready.catch(() => undefined); // awaited by the prefix check
      conns.push({ endpoint, client, channel });
    }
  }
  return conns;
}

/** Closes every connection and client once. */
export function closeAll<T>(conns: readonly Conn<T>[]): void {
  const clients = new Set<Client>();
  for (const c of conns) {
    c.channel.close();
    clients.add(c.client);
  }
  for (const client of clients) client.close();
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
 * {@link nextFrame} gives one with its gRPC message prefix, ready for the wire.
 */
export class PutEncoder {
  readonly value = Buffer.alloc(VALUE_BYTES);
  /** Where the key starts in a message, and its length. */
  readonly keyAt: number;
  readonly keyLength: number;
  /** The gRPC prefix and the key's tag and length. */
  private readonly head: Buffer;
  private readonly tail: Buffer;
  private readonly frameLength: number;
  private readonly random = Buffer.allocUnsafe(8192);
  private at = this.random.length;

  constructor(private readonly prefix: Buffer) {
    this.keyLength = prefix.length + KEY_BYTES;
    const key = [0x0a, ...varint(this.keyLength)];
    this.tail = Buffer.concat([Buffer.from([0x12, ...varint(VALUE_BYTES)]), this.value]);
    const messageLength = key.length + this.keyLength + this.tail.length;
    const grpc = Buffer.alloc(GRPC_PREFIX_BYTES); // not compressed
    grpc.writeUInt32BE(messageLength, 1);
    this.head = Buffer.concat([grpc, Buffer.from(key)]);
    this.keyAt = key.length;
    this.frameLength = GRPC_PREFIX_BYTES + messageLength;
  }

  /** A PutRequest with a fresh key. */
  next(): Buffer {
    return this.nextFrame().subarray(GRPC_PREFIX_BYTES);
  }

  /** A gRPC length-prefixed PutRequest with a fresh key. */
  nextFrame(): Buffer {
    if (this.at + 8 > this.random.length) {
      randomFillSync(this.random);
      this.at = 0;
    }
    const hi31 = this.random.readUInt32LE(this.at) & 0x7fffffff; // int63: top bit clear
    const lo32 = this.random.readUInt32LE(this.at + 4);
    this.at += 8;
    const keyAt = GRPC_PREFIX_BYTES + this.keyAt;
    const keyEnd = keyAt + this.keyLength;
    const msg = Buffer.allocUnsafe(this.frameLength);
    this.head.copy(msg, 0);
    this.prefix.copy(msg, keyAt);
    msg.fill(0, keyAt + this.prefix.length, keyEnd);
    this.tail.copy(msg, keyEnd);
    // The zig-zag encoding of a non-negative v is v << 1; then base-128 varint.
    let hi = ((hi31 << 1) | (lo32 >>> 31)) >>> 0;
    let lo = (lo32 << 1) >>> 0;
    let i = keyAt + this.prefix.length;
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
export async function deletePrefix<T>(
  conns: Conn<T>[],
  prefix: Buffer,
  rangeEnd: Buffer,
  budgetMs: number,
): Promise<{ cleanedUp: boolean; deleted: number; revision?: string; error?: string }> {
  const until = Date.now() + budgetMs;
  let deleted = 0;
  const perEndpoint = new Map<string, Conn<T>>();
  for (const c of conns) if (!perEndpoint.has(c.endpoint)) perEndpoint.set(c.endpoint, c);
  let revision: string | undefined;
  let lastError = 'no endpoint answered';
  for (let round = 0; round < 5 && Date.now() < until; round++) {
    for (const conn of perEndpoint.values()) {
      if (Date.now() >= until) break;
      try {
        const del = await conn.client.deleteRange(prefix, rangeEnd, {
          timeoutMs: Math.max(1, until - Date.now()),
        });
        revision = del.revision;
        deleted += Number(del.deleted);
        const left = await conn.client.rangeOver(prefix, rangeEnd, {
          countOnly: true,
          timeoutMs: Math.max(1, until - Date.now()),
        });
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
