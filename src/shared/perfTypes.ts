/** The performance check's data as the webview shows it (the load, each second, the result). */

export type PerfLoad = 's' | 'm' | 'l' | 'xl';

/** One second of the run, by completion time. */
export interface PerfSecond {
  /** 1-based. */
  second: number;
  /** Successful writes that completed in this second. */
  writes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Failed writes that completed in this second. */
  errors: number;
}

/** What `onProgress` receives once a second. */
export interface PerfProgress extends PerfSecond {
  elapsedMs: number;
  totalMs: number;
  errorsSoFar: number;
}

export interface PerfResult {
  load: PerfLoad;
  /** The load's configured length. */
  durationMs: number;
  /** From the first write to the last answer (`pkg/report`'s Total): the RPS denominator. */
  elapsedMs: number;
  /** Target writes/s of the profile. */
  target: number;
  clients: number;
  /** Successful writes / elapsed seconds. */
  rps: number;
  /** Successful writes. */
  writes: number;
  errors: number;
  /** Error message -> count (etcdctl prints these as `FAIL: ERROR(msg) -> n`). */
  errorDist: Record<string, number>;
  avgMs: number;
  stddevMs: number;
  slowestMs: number;
  fastestMs: number;
  p50Ms: number;
  p99Ms: number;
  /** etcdctl's verdict; false when cancelled. */
  pass: boolean;
  /** etcdctl's verdict lines, word for word; empty when cancelled (etcdctl prints none then). */
  lines: string[];
  seconds: PerfSecond[];
  startedAt: string;
  endpoints: string[];
  prefix: string;
  /** gRPC connections the load used (spread round-robin over the endpoints). */
  connections: number;
  /** Endpoints that did not answer before the load and were left out of it. */
  skippedEndpoints: string[];
  /** The prefix was deleted and a read afterwards found no key under it. */
  cleanedUp: boolean;
  /** Keys the clean-up deleted: every successful write, unless keys collided. */
  deletedKeys: number;
  /** Why clean-up failed, when it did. */
  cleanupError?: string;
  cancelled: boolean;
  /** Revision of the clean-up delete: compact at it to free the space (see compactAndDefrag). */
  deleteRevision?: string;
}
