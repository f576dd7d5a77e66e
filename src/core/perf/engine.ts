/**
 * The load loop of `check perf`, with etcdctl's semantics (etcdctl/ctlv3/command/check.go):
 * refuse a prefix that holds keys, write 256-byte keys with 1 KiB zero values through a token
 * bucket of burst 1 with at most `clients` writes in flight, time each write, and delete the
 * prefix afterwards whatever happened (connections.ts). It runs in the perf worker (worker.ts),
 * off the caller's thread, on Node's own HTTP/2 (wire.ts, etcd/rpc.ts): no etcd3, no grpc-js.
 */
import { classifyEtcdError } from '../etcd/problems';
import { PERF_PROFILES, percentile, perfVerdict, summarize } from './stats';
import type { PerfResult, PerfSecond } from '../../shared/perfTypes';
import type { PerfEngineConfig, PerfEngineHooks, PerfOutcome } from './config';
import {
  CANCEL_DRAIN_MS,
  closeAll,
  connect,
  connectionsPerEndpoint,
  deletePrefix,
  errorText,
  prefixRangeEnd,
  showKey,
  PutEncoder,
  Samples,
  type Conn,
} from './connections';
import type { PutCall } from './wire';

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
  // Every write's answer goes to the load loop once it runs.
  let answer: (w: InFlight, err: Error | null) => void = () => undefined;
  const conns = await connect<InFlight>(cfg, Math.max(1, perEndpoint), (w, err) => answer(w, err));
  try {
    // The prefix check runs on every endpoint at once, while every write connection completes
    // its TLS handshake, all before the clock starts.
    const checkTimeoutMs = cfg.checkTimeoutMs ?? 5000;
    const checkDeadline = Date.now() + checkTimeoutMs;
    const checks = await Promise.allSettled(
      conns.map(async (c) => {
        const range = c.client.rangeOver(prefix, rangeEnd, {
          limit: 1,
          keysOnly: true,
          timeoutMs: Math.max(1, checkDeadline - Date.now()),
        });
        // Both awaited at once: neither rejection is left unhandled.
        const [found] = await Promise.all([range, c.channel.readyWithin(checkTimeoutMs)]);
        return found;
      }),
    );
    const live: Conn<InFlight>[] = [];
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
    const load = await runLoad(cfg, live, encoder, putTimeoutMs, hooks, (f) => (answer = f));
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
    closeAll(conns);
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
  conn: Conn<InFlight>;
  call: PutCall | undefined;
  answered: boolean;
  timedOut: boolean;
}

/**
 * How early a token may be issued. Node's timers count whole milliseconds from the loop's
 * cached clock, so a timer set for a token often fires one or two milliseconds before it is
 * due; without this slack that wake-up found nothing due and set another timer (1.65 wake-ups
 * per write at s instead of 1, each a worker-loop turn and a context switch). The rate is
 * unchanged: token n is still counted at t0 + n/rate, only sent up to 2 ms sooner.
 */
const EARLY_MS = 2;

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
  conns: Conn<InFlight>[],
  encoder: PutEncoder,
  putTimeoutMs: number,
  hooks: PerfEngineHooks,
  onAnswer: (f: (w: InFlight, err: Error | null) => void) => void,
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
  let queue: Array<InFlight | undefined> = [];
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
        if (w.call) w.conn.channel.cancel(w.call); // answers with CANCELLED: a timeout below
      }
      queue[head++] = undefined; // nothing kept alive into the old generation
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

  const answered = (w: InFlight, err: Error | null): void => {
    const t = performance.now();
    w.answered = true;
    w.call = undefined; // the stream and its buffers can go with the next scavenge
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
    const frame = encoder.nextFrame();
    const w: InFlight = {
      start: performance.now(),
      conn,
      call: undefined,
      answered: false,
      timedOut: false,
    };
    inFlight++;
    queue.push(w);
    w.call = conn.channel.put(frame, w);
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
    while (tat <= now + EARLY_MS && tat < end) {
      if (inFlight >= clients) {
        blocked = true;
        return; // the next answer pumps again
      }
      issue();
      tat += interval;
    }
    pumpTimer = setTimeout(pump, Math.max(1, tat - performance.now()));
  }

  onAnswer(answered);
  hooks.signal?.addEventListener('abort', onAbort);
  secondTimer = setTimeout(tickSeconds, 1000);
  pump();
  return done;
}
