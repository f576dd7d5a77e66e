/** What the performance check's load is given, and what it reports while it runs. */
import type { EtcdTls } from '../etcd/client';
import type { PerfLoad, PerfProgress, PerfResult } from '../../shared/perfTypes';

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
