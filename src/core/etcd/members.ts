/** `etcdctl member list` semantics, through the first endpoint that answers. */
import { K3sEtcdError, throwIfAborted } from '../errors';
import type { IMember } from 'etcd3';
import type { EtcdMember } from '../../shared/etcdTypes';
import { createEndpointClient, memberIdToHex, type EtcdClientOptions } from './client';
import { classifyEtcdError } from './problems';

export type { EtcdMember } from '../../shared/etcdTypes';

export interface ListMembersOptions extends EtcdClientOptions {
  signal?: AbortSignal;
}

/** etcd3's member (decimal uint64 ID) as etcdctl shows it (hex ID). */
export function toMember(m: IMember): EtcdMember {
  return {
    id: memberIdToHex(m.ID),
    name: m.name,
    peerUrls: [...m.peerURLs],
    clientUrls: [...m.clientURLs],
    isLearner: m.isLearner,
  };
}

export async function listMembers(
  endpoints: readonly string[],
  opts: ListMembersOptions = {},
): Promise<EtcdMember[]> {
  if (endpoints.length === 0) throw new K3sEtcdError('usage', 'No etcd endpoints to ask.');
  throwIfAborted(opts.signal, 'Member list');
  const clients = await Promise.all(endpoints.map((ep) => createEndpointClient(ep, opts)));
  try {
    // Ask every endpoint at once and take the first answer: a dead member costs nothing.
    const res = await Promise.any(clients.map((c) => c.cluster.memberList({})));
    throwIfAborted(opts.signal, 'Member list');
    return res.members.map(toMember);
  } catch (err) {
    if (err instanceof AggregateError) {
      const reasons = err.errors.map((e, i) => {
        const p = classifyEtcdError(e, endpoints[i] ?? '', opts.tls);
        return `${endpoints[i]}: ${p.summary}. ${p.hint}`;
      });
      throw new K3sEtcdError(
        'etcd-unreachable',
        `No etcd endpoint answered the member list:\n  ${reasons.join('\n  ')}`,
        { cause: err },
      );
    }
    throw err;
  } finally {
    for (const c of clients) c.close();
  }
}
