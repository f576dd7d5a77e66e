/** `etcdctl member list` semantics, through the first endpoint that answers. */
import { K3sEtcdError, errorMessage, throwIfAborted } from '../errors';
import type { IMember } from 'etcd3';
import type { EtcdMember } from '../../shared/etcdTypes';
import { memberIdToHex, DEFAULT_TIMEOUT_MS, type EtcdClientOptions } from './client';
import { classifyEtcdError } from './problems';
import { ClusterTls } from './clusterTls';
import { openRpc, type EtcdRpc, type RpcOptions } from './rpc';
import type { RpcMember } from './rpcMessages';

export type { EtcdMember } from '../../shared/etcdTypes';

export interface ListMembersOptions extends EtcdClientOptions {
  signal?: AbortSignal;
  /** The clients of the endpoints (default: `rpc.ts`'s); tests pass etcd3's to compare. */
  open?: (endpoints: readonly string[], opts: RpcOptions) => Promise<EtcdRpc[]>;
}

/** etcd's member (decimal uint64 ID, from etcd3 or `rpc.ts`) as etcdctl shows it (hex ID). */
export function toMember(m: IMember | RpcMember): EtcdMember {
  return {
    id: memberIdToHex(m.ID),
    name: m.name,
    peerUrls: [...m.peerURLs],
    clientUrls: [...m.clientURLs],
    isLearner: m.isLearner,
  };
}

/**
 * No endpoint answered the member list: the message has one line per endpoint (what went wrong
 * and what to do); `short` says it in one line ("connection refused by 127.0.1.61:2379; …").
 */
export class MemberListError extends K3sEtcdError {
  constructor(
    readonly reasons: ReadonlyArray<{ endpoint: string; summary: string; hint: string }>,
    options?: { cause?: unknown },
  ) {
    super(
      'etcd-unreachable',
      `No etcd endpoint answered the member list:\n  ${reasons.map((r) => `${r.endpoint}: ${r.summary}. ${r.hint}`).join('\n  ')}`,
      options,
    );
    this.name = 'MemberListError';
  }

  /** Why, per endpoint, in one line. */
  get short(): string {
    return this.reasons.map((r) => r.summary).join('; ');
  }
}

/** An error in one line for a note: a member list failure's reasons, else the first line. */
export function oneLineReason(err: unknown): string {
  if (err instanceof MemberListError) return err.short;
  const first = errorMessage(err).split('\n')[0] ?? '';
  return first.replace(/:\s*$/, '');
}

/**
 * How long the member list waits for one endpoint before asking the next as well: a dead or
 * black-holed member costs at most this much, and a healthy cluster is asked once (one TLS
 * handshake, as `etcdctl member list` does) instead of on every endpoint.
 */
export const MEMBER_LIST_HEDGE_MS = 150;

export async function listMembers(
  endpoints: readonly string[],
  opts: ListMembersOptions = {},
): Promise<EtcdMember[]> {
  if (endpoints.length === 0) throw new K3sEtcdError('usage', 'No etcd endpoints to ask.');
  throwIfAborted(opts.signal, 'Member list');
  const rpcOpts: RpcOptions = {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.tls ? { tls: opts.tls } : {}),
  };
  // The TLS files read and parsed once, whichever endpoints end up asked.
  const clusterTls = !opts.open && opts.tls ? await ClusterTls.load(opts.tls) : undefined;
  const openOne = async (endpoint: string): Promise<EtcdRpc> =>
    opts.open
      ? ((await opts.open([endpoint], rpcOpts)) as [EtcdRpc])[0]
      : openRpc(endpoint, { ...rpcOpts, ...(clusterTls ? { clusterTls } : {}) });
  const clients: EtcdRpc[] = [];
  let over = false;
  try {
    // The first endpoint first; the next one as well when it fails or has not answered within
    // the hedge, and so on: the first answer wins, and a dead member costs little.
    const res = await firstAnswer(endpoints.length, MEMBER_LIST_HEDGE_MS, async (i) => {
      const c = await openOne(endpoints[i] as string);
      // Opened after the answer came: closed at once, never left behind.
      if (over) c.close();
      else clients.push(c);
      return c.memberList();
    });
    throwIfAborted(opts.signal, 'Member list');
    return res.members.map(toMember);
  } catch (err) {
    if (err instanceof AggregateError) {
      const reasons = err.errors.map((e, i) => {
        const p = classifyEtcdError(e, endpoints[i] ?? '', opts.tls);
        return { endpoint: endpoints[i] ?? '', summary: p.summary, hint: p.hint };
      });
      throw new MemberListError(reasons, { cause: err });
    }
    throw err;
  } finally {
    over = true;
    for (const c of clients) c.close();
  }
}

/**
 * Runs `attempt(0)`, then `attempt(i + 1)` once `attempt(i)` failed or `hedgeMs` passed without
 * an answer; resolves with the first success, or rejects with an AggregateError whose errors are
 * in attempt order once every attempt failed.
 */
export function firstAnswer<T>(
  n: number,
  hedgeMs: number,
  attempt: (i: number) => Promise<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const errors: unknown[] = new Array<unknown>(n);
    let started = 0;
    let failed = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const next = () => {
      clearTimeout(timer);
      if (done || started >= n) return;
      const i = started++;
      attempt(i).then(
        (v) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          errors[i] = e;
          if (++failed === n) {
            done = true;
            reject(new AggregateError(errors, 'No endpoint answered'));
          } else if (i === started - 1) next();
        },
      );
      if (started < n) timer = setTimeout(next, hedgeMs);
    };
    next();
  });
}
