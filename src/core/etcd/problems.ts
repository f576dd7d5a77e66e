/**
 * gRPC and TLS errors, classified and worded for people: what went wrong with which member, and
 * what to do about it.
 */
import type { EtcdProblem } from '../../shared/etcdTypes';
import { tlsCertSource, type EtcdTls } from './client';

export type { EtcdProblem, EtcdProblemCode } from '../../shared/etcdTypes';

function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).host;
  } catch {
    return endpoint;
  }
}

export function classifyEtcdError(err: unknown, endpoint: string, tls?: EtcdTls): EtcdProblem {
  const text =
    err instanceof Error
      ? `${err.message} ${String((err as { details?: unknown }).details ?? '')}`
      : String(err);
  const host = hostOf(endpoint);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || /ENOENT/.test(text)) {
    const file =
      /open '([^']+)'/.exec(text)?.[1] ?? (err as { path?: string }).path ?? 'a TLS file';
    return {
      code: 'missing-file',
      summary: `cannot read ${file}: no such file`,
      hint: 'Generate the certificate set, or fix etcd.tls in the inventory.',
    };
  }
  const altnames =
    /does not match certificate's altnames: (?:IP|Host): (\S+?)\.? is not in the cert's (?:list|altnames): ?([^\s,)]+(?:, [^\s,)]+)*)/.exec(
      text,
    );
  if (altnames || /altnames/.test(text)) {
    const name = altnames?.[1]?.replace(/\.$/, '') ?? host;
    const names = altnames?.[2]?.replace(/\.$/, '');
    return {
      code: 'name-mismatch',
      summary: `TLS name mismatch: the server certificate of ${host} does not name ${name}${names ? ` (it names ${names})` : ''}`,
      hint: `Re-issue the member's certificates with ${name} as a SAN (Re-issue Member Certificates), or connect by an address the certificate names.`,
    };
  }
  if (
    /self[- ]signed certificate|unable to get local issuer certificate|unable to verify the first certificate|certificate signature failure|unknown ca\b|CERT_SIGNATURE_FAILURE|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN/i.test(
      text,
    )
  ) {
    return {
      code: 'unknown-authority',
      summary: `TLS unknown authority: ${host}'s certificate is not signed by the CA in ${tls ? ('caFile' in tls ? tls.caFile : tls.source) : 'the CA file'}`,
      hint: "Use the CA that signed the etcd server certificates (the cluster's ca.pem), or re-issue the server certificates under this CA.",
    };
  }
  if (
    /bad certificate|certificate required|alert number 4[26]|alert number 116|tlsv1 alert unknown ca|sslv3 alert|alert unknown ca|EPIPE|ECONNRESET|Connection dropped|socket hang up/i.test(
      text,
    )
  ) {
    return {
      code: 'client-cert-rejected',
      summary: `client certificate rejected by ${host}${tls ? ` (${tlsCertSource(tls)})` : ''}`,
      hint: "etcd trusts another CA for clients: use a client certificate issued by the cluster's CA (client/admin.pem).",
    };
  }
  if (/ECONNREFUSED|connection refused/i.test(text)) {
    return {
      code: 'refused',
      summary: `connection refused by ${host}`,
      hint: 'etcd is not running on this member, or listens on another address or port.',
    };
  }
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/i.test(text)) {
    return {
      code: 'dns',
      summary: `cannot resolve ${host}`,
      hint: 'Check the address in the inventory, or use an IP address.',
    };
  }
  if (
    /deadline exceeded|DEADLINE_EXCEEDED|timed out|ETIMEDOUT|Failed to connect before the deadline/i.test(
      text,
    )
  ) {
    return {
      code: 'timeout',
      summary: `no answer from ${host} within the timeout`,
      hint: 'The member is down, paused, overloaded or unreachable.',
    };
  }
  if (/permission denied/i.test(text)) {
    return {
      code: 'permission-denied',
      summary: `permission denied on ${host}`,
      hint: "etcd auth is on: the client certificate's CN must be a user with the needed role.",
    };
  }
  if (/no leader/i.test(text)) {
    return {
      code: 'no-leader',
      summary: `${host} has no leader`,
      hint: 'The cluster lost quorum: bring members back until a majority runs.',
    };
  }
  if (/NOSPACE|database space exceeded/i.test(text)) {
    return {
      code: 'alarm',
      summary: `alarm NOSPACE on ${host}: database space exceeded`,
      hint: 'Run "Maintain etcd…" on the cluster, or k3s-etcd maintain --rescue: it compacts, defragments member by member and disarms the alarm (or by hand: etcdctl compact, defrag, then alarm disarm).',
    };
  }
  if (/CORRUPT/i.test(text)) {
    return {
      code: 'alarm',
      summary: `alarm CORRUPT on ${host}`,
      hint: "A member's data is inconsistent: restore it from a snapshot.",
    };
  }
  const first =
    text
      .split('\n')[0]
      ?.replace(/^\d+ [A-Z_]+: /, '')
      .trim() ?? 'unknown error';
  return { code: 'other', summary: `${host}: ${first}`, hint: 'See the log for details.' };
}
