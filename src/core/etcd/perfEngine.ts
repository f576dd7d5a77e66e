/**
 * The load loop of `check perf`, with etcdctl's semantics (etcdctl/ctlv3/command/check.go):
 * refuse a prefix that holds keys, write 256-byte keys with 1 KiB zero values through a token
 * bucket of burst 1 with at most `clients` writes in flight, time each write, and delete the
 * prefix afterwards whatever happened. It runs in the perf worker (perfWorker.ts), off the
 * caller's thread, and loads etcd3; the extension host only imports perf.ts.
 */
import { randomFillSync } from 'node:crypto';
import type * as Etcd3Module from 'etcd3';
import type { Etcd3, IOptions } from 'etcd3';
import { noop } from 'cockatiel';
import { tlsCredentials, type EtcdTls } from './client';
import { classifyEtcdError } from './problems';
import {
  PERF_PROFILES,
  percentile,
  perfVerdict,
  summarize,
  type PerfLoad,
  type PerfProgress,
  type PerfResult,
  type PerfSecond,
} from './perfStats';

export interface PerfEngineConfig {
  endpoints: string[];
  tls?: EtcdTls;
  load: PerfLoad;
  durationMs: number;
  prefix: string;
  /**
   * gRPC connections per endpoint. etcdctl opens one per client (50 to 1000), each balanced
   * over the endpoints; grpc-js multiplexes the calls on HTTP/2, and a couple of connections
   * per endpoint carry the load with less CPU. Default: 2, more when that would put over 200
   * concurrent streams on one connection (Go's HTTP/2 server allows 250 by default).
   */
  connectionsPerEndpoint?: number;
  /**
   * A write without an answer after this long is cancelled and counted as an error. etcdctl
   * waits forever; this only bounds a hung cluster. Default 10 s.
   */
  putTimeoutMs?: number;
  /** Deadline of the prefix check before the load. Default 5 s. */
  checkTimeoutMs?: number;
  /** Budget of the clean-up delete (etcdctl: 30 s). */
  cleanupTimeoutMs?: number;
}

export type PerfEngineEvent =
  /** The prefix was empty and the first write goes out: from now on there is data to delete. */
  | { type: 'started' }
  | { type: 'progress'; progress: PerfProgress }
  /** The load is over; the prefix is being deleted. */
  | { type: 'cleaning' };

export type PerfOutcome =
  | { kind: 'done'; result: PerfResult }
  | { kind: 'refused'; message: string }
  | { kind: 'unreachable'; message: string };

export interface PerfEngineHooks {
  signal?: AbortSignal;
  onEvent?: (e: PerfEngineEvent) => void;
}

const KEY_BYTES = 256;
const VALUE_BYTES = 1024;
const MAX_STREAMS_PER_CONNECTION = 200;
/** After a cancel, writes still in flight get this long before they are cancelled too. */
const CANCEL_DRAIN_MS = 3000;

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

interface Cancellable {
  cancel(): void;
}

interface Conn {
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

async function connect(
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

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** A key for messages: printable ASCII as is, other bytes escaped, cut after 60 bytes. */
function showKey(key: Buffer): string {
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
class Samples {
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

// ---- the run --------------------------------------------------------------------------------

export async function runPerfLoad(
  cfg: PerfEngineConfig,
  hooks: PerfEngineHooks = {},
): Promise<PerfOutcome> {
  const profile = PERF_PROFILES[cfg.load];
  const perEndpoint =
    cfg.connectionsPerEndpoint ?? connectionsPerEndpoint(cfg.load, cfg.endpoints.length);
  const putTimeoutMs = cfg.putTimeoutMs ?? 10_000;
  const prefix = Buffer.from(cfg.prefix);
  const rangeEnd = prefixRangeEnd(prefix);
  const encoder = new PutEncoder(prefix);
  const conns = await connect(cfg, Math.max(1, perEndpoint), encoder, putTimeoutMs);
  try {
    // The prefix check runs on every connection at once, which also completes each TLS
    // handshake before the clock starts.
    const checkDeadline = Date.now() + (cfg.checkTimeoutMs ?? 5000);
    const checks = await Promise.allSettled(
      conns.map((c) =>
        c.client.kv.range(
          { key: prefix, range_end: rangeEnd, limit: 1, keys_only: true },
          { deadline: checkDeadline },
        ),
      ),
    );
    const live: Conn[] = [];
    const failures = new Map<string, unknown>();
    for (const [i, r] of checks.entries()) {
      const conn = conns[i];
      if (!conn) continue;
      if (r.status === 'rejected') {
        failures.set(conn.endpoint, r.reason);
        continue;
      }
      const kv = r.value.kvs[0];
      if (kv) {
        return {
          kind: 'refused',
          message:
            `Prefix "${cfg.prefix}" already holds keys (for example "${showKey(kv.key)}"). ` +
            'The check deletes everything under its prefix when it ends, so it does not start: ' +
            `delete those keys first (etcdctl del --prefix ${cfg.prefix}) or choose another prefix.`,
        };
      }
      live.push(conn);
    }
    if (live.length === 0) {
      const reasons = cfg.endpoints.map((ep) => {
        const p = classifyEtcdError(failures.get(ep), ep, cfg.tls);
        return `${ep}: ${p.summary}. ${p.hint}`;
      });
      return {
        kind: 'unreachable',
        message: `No etcd endpoint answered before the performance check:\n  ${reasons.join('\n  ')}`,
      };
    }
    const skipped = cfg.endpoints.filter((ep) => !live.some((c) => c.endpoint === ep));
    const base = {
      load: cfg.load,
      durationMs: cfg.durationMs,
      target: profile.rate,
      clients: profile.clients,
      startedAt: new Date().toISOString(),
      endpoints: [...cfg.endpoints],
      prefix: cfg.prefix,
      connections: live.length,
      skippedEndpoints: skipped,
    };
    if (hooks.signal?.aborted) {
      // Nothing was written: nothing to clean up.
      return {
        kind: 'done',
        result: { ...base, ...emptyStats(), cleanedUp: true, deletedKeys: 0, cancelled: true },
      };
    }
    hooks.onEvent?.({ type: 'started' });
    const load = await runLoad(cfg, live, encoder, putTimeoutMs, hooks);
    // Always clean up: after success, failure and cancel (etcd 3.5's interruptible clean-up).
    hooks.onEvent?.({ type: 'cleaning' });
    const order = [...live, ...conns.filter((c) => !live.includes(c))];
    const clean = await deletePrefix(order, prefix, rangeEnd, cfg.cleanupTimeoutMs ?? 30_000);
    const stats = summarize(load.lats);
    const rps = load.elapsedMs > 0 ? (stats.count * 1000) / load.elapsedMs : 0;
    const verdict = load.cancelled
      ? { pass: false, lines: [] }
      : perfVerdict({
          rps,
          target: profile.rate,
          slowestMs: stats.slowestMs,
          stddevMs: stats.stddevMs,
          errorDist: load.errorDist,
        });
    const result: PerfResult = {
      ...base,
      elapsedMs: load.elapsedMs,
      rps,
      writes: stats.count,
      errors: load.errors,
      errorDist: load.errorDist,
      avgMs: stats.avgMs,
      stddevMs: stats.stddevMs,
      slowestMs: stats.slowestMs,
      fastestMs: stats.fastestMs,
      p50Ms: stats.p50Ms,
      p99Ms: stats.p99Ms,
      pass: verdict.pass,
      lines: verdict.lines,
      seconds: load.seconds,
      cleanedUp: clean.cleanedUp,
      deletedKeys: clean.deleted,
      cancelled: load.cancelled,
    };
    if (clean.error !== undefined) result.cleanupError = clean.error;
    if (clean.revision !== undefined) result.deleteRevision = clean.revision;
    return { kind: 'done', result };
  } finally {
    for (const c of conns) c.client.close();
  }
}

function emptyStats() {
  return {
    elapsedMs: 0,
    rps: 0,
    writes: 0,
    errors: 0,
    errorDist: {},
    avgMs: 0,
    stddevMs: 0,
    slowestMs: 0,
    fastestMs: 0,
    p50Ms: 0,
    p99Ms: 0,
    pass: false,
    lines: [],
    seconds: [],
  };
}

interface LoadOutcome {
  lats: Float64Array;
  errors: number;
  errorDist: Record<string, number>;
  seconds: PerfSecond[];
  elapsedMs: number;
  cancelled: boolean;
}

interface InFlight {
  start: number;
  call: Cancellable | undefined;
  answered: boolean;
  timedOut: boolean;
}

/**
 * The token bucket: token n is due at t0 + n/rate. A pump issues every token that is due;
 * timers fire about every millisecond at best, so at high rates it issues the few that fell
 * due since the last tick, as etcdctl's goroutine sleeping in `limiter.Wait` would have one by
 * one. While `clients` writes are in flight the generator is blocked, like etcdctl's on its
 * full channel; the next answer resumes it with one token at once, and the tokens it missed
 * are lost (burst 1).
 */
function runLoad(
  cfg: PerfEngineConfig,
  conns: Conn[],
  encoder: PutEncoder,
  putTimeoutMs: number,
  hooks: PerfEngineHooks,
): Promise<LoadOutcome> {
  const { clients, rate } = PERF_PROFILES[cfg.load];
  const interval = 1000 / rate;
  const totalMs = cfg.durationMs;
  const nBuckets = Math.max(1, Math.ceil(totalMs / 1000));
  const buckets = Array.from({ length: nBuckets }, () => ({ lats: [] as number[], errors: 0 }));
  const lats = new Samples();
  const errorDist: Record<string, number> = {};
  const seconds: PerfSecond[] = [];
  /** Writes in start order; the sweep cancels those older than the timeout. */
  let queue: InFlight[] = [];
  let head = 0;
  let errors = 0;
  let inFlight = 0;
  let rr = 0;
  let generating = true;
  let blocked = false;
  let cancelled = false;
  let settled = false;
  let emitted = 0;
  let lastBucket = nBuckets - 1;
  let timeoutMs = putTimeoutMs;
  let pumpTimer: NodeJS.Timeout | undefined;
  let secondTimer: NodeJS.Timeout | undefined;

  const t0 = performance.now();
  const end = t0 + totalMs;
  const endTimer = setTimeout(() => stop('end'), totalMs);
  let tat = t0;
  let lastAnswer = t0;
  let stoppedAt = end;
  let finish: (o: LoadOutcome) => void = () => undefined;
  const done = new Promise<LoadOutcome>((resolve) => (finish = resolve));

  const bucketAt = (t: number) => Math.min(lastBucket, Math.max(0, Math.floor((t - t0) / 1000)));

  const emit = (k: number): void => {
    const b = buckets[k];
    if (!b) return;
    const sorted = Float64Array.from(b.lats).sort();
    const s: PerfSecond = {
      second: k + 1,
      writes: sorted.length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1] ?? 0,
      errors: b.errors,
    };
    seconds.push(s);
    b.lats = [];
    // The last second of a cancelled run ends at the cancel.
    const elapsedMs = k < lastBucket ? (k + 1) * 1000 : cancelled ? stoppedAt - t0 : totalMs;
    hooks.onEvent?.({
      type: 'progress',
      progress: { ...s, elapsedMs, totalMs, errorsSoFar: errors },
    });
  };

  // Each second is reported when it is over; the last one also holds the answers that come
  // after the end, so it is reported when the last write has answered.
  const tickSeconds = (): void => {
    const now = performance.now();
    while (emitted < lastBucket && t0 + (emitted + 1) * 1000 <= now) emit(emitted++);
    if (emitted < lastBucket)
      secondTimer = setTimeout(tickSeconds, Math.max(1, t0 + (emitted + 1) * 1000 - now));
  };

  const sweep = (): void => {
    const now = performance.now();
    while (head < queue.length) {
      const w = queue[head];
      if (!w) break;
      if (!w.answered) {
        if (now - w.start < timeoutMs) break;
        w.timedOut = true;
        w.call?.cancel(); // answers with CANCELLED, counted below as a timeout
      }
      head++;
    }
    if (head > 4096 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
  };
  const sweepTimer = setInterval(sweep, 250);

  const settle = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(secondTimer);
    clearInterval(sweepTimer);
    while (emitted <= lastBucket) emit(emitted++);
    finish({
      lats: lats.values(),
      errors,
      errorDist,
      seconds,
      elapsedMs: lastAnswer - t0,
      cancelled,
    });
  };

  const stop = (why: 'end' | 'cancel'): void => {
    if (!generating) return;
    generating = false;
    clearTimeout(pumpTimer);
    clearTimeout(endTimer);
    hooks.signal?.removeEventListener('abort', onAbort);
    if (why === 'cancel') {
      cancelled = true;
      stoppedAt = Math.min(performance.now(), end);
      lastBucket = bucketAt(stoppedAt);
      timeoutMs = Math.min(timeoutMs, CANCEL_DRAIN_MS);
    }
    if (inFlight === 0) settle();
  };
  const onAbort = (): void => stop('cancel');

  const answered = (w: InFlight, err: unknown): void => {
    const t = performance.now();
    w.answered = true;
    inFlight--;
    const b = buckets[bucketAt(t)];
    if (err === null || err === undefined) {
      const lat = t - w.start;
      lats.push(lat);
      b?.lats.push(lat);
    } else {
      errors++;
      if (b) b.errors++;
      const msg = w.timedOut
        ? `no answer within ${(timeoutMs / 1000).toFixed(0)} s (cancelled)`
        : errorText(err);
      errorDist[msg] = (errorDist[msg] ?? 0) + 1;
    }
    if (t > lastAnswer) lastAnswer = t;
    if (generating) {
      if (blocked) pump();
    } else if (inFlight === 0) settle();
  };

  const issue = (): void => {
    const conn = conns[rr++ % conns.length];
    if (!conn) return;
    const msg = encoder.next();
    const w: InFlight = {
      start: performance.now(),
      call: undefined,
      answered: false,
      timedOut: false,
    };
    inFlight++;
    queue.push(w);
    w.call = conn.put(msg, (err) => answered(w, err));
  };

  function pump(): void {
    clearTimeout(pumpTimer);
    pumpTimer = undefined;
    if (!generating) return;
    const now = performance.now();
    if (now >= end) return stop('end');
    if (blocked) {
      if (inFlight >= clients) return;
      blocked = false;
      if (tat < now) tat = now; // burst 1: the tokens missed while blocked are gone
    }
    while (tat <= now) {
      if (inFlight >= clients) {
        blocked = true;
        return; // the next answer pumps again
      }
      issue();
      tat += interval;
    }
    pumpTimer = setTimeout(pump, Math.max(0, tat - performance.now()));
  }

  hooks.signal?.addEventListener('abort', onAbort);
  secondTimer = setTimeout(tickSeconds, 1000);
  pump();
  return done;
}

/**
 * etcdctl's `Delete(prefix, WithPrefix)` with a 30 s budget, through the first endpoint that
 * answers; then a count under the prefix, and another delete if a late write landed after it.
 */
async function deletePrefix(
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
