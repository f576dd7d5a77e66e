/**
 * Why a write of the test writer (writer.ts) failed on one endpoint, in a few words, and which
 * of those a rolling change may cause. Pure (no socket), so unit tests take it too.
 */
import { errorMessage } from '../../src/core/errors';

/** The reason of an attempt a member's TLS refused (its certificate, the handshake, an alert). */
export const TLS_REFUSED = 'tls refused';

/**
 * The reasons a write may be retried on another endpoint while members restart one at a time: a
 * leader change, an endpoint down (stopped or starting), a timeout. Never TLS_REFUSED.
 */
export const ROLLING_RETRIES: ReadonlySet<string> = new Set([
  'leader changed',
  'endpoint down',
  'timeout',
]);

/** Why an attempt failed, in a few words. */
export function reasonOf(err: unknown): string {
  const m = errorMessage(err);
  // "raft proposal dropped": the leader was handing over its leadership.
  if (/leader changed|no leader|not leader|leader.*(lost|unavailable)|proposal dropped/i.test(m))
    return 'leader changed';
  // Before "endpoint down": grpc-js reports a refused handshake as UNAVAILABLE ("No connection
  // established. Last error: ... alert unknown ca"), which must not pass for a restart.
  if (/certificate|handshake|tls|alert|unknown ca|bad certificate/i.test(m)) return TLS_REFUSED;
  // "Received HTTP status code 200": a member still starting answers gRPC with its HTTP handler;
  // "RST_STREAM": a member stopping ended the call.
  const down =
    /ECONNREFUSED|connection refused|UNAVAILABLE|No connection established|socket|ECONNRESET|Received HTTP status code|RST_STREAM/i;
  if (down.test(m)) return 'endpoint down';
  if (/deadline|timed? ?out/i.test(m)) return 'timeout';
  return m.split('\n')[0]?.slice(0, 80) ?? 'error';
}
