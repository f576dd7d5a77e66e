/**
 * The system tests' writer (scripts/harness/writer.ts, its reasons in writeReasons.ts) sorts every retried write by its reason,
 * and the rolling tests accept only a leader change, an endpoint down or a timeout: a write a
 * member's TLS refused (an unknown CA, a bad or required certificate, a failed handshake) is
 * its own reason, taken before "endpoint down" although grpc-js says UNAVAILABLE for both, so a
 * CA rotation that cut a client off cannot pass for members restarting.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reasonOf, ROLLING_RETRIES, TLS_REFUSED } from '../../scripts/harness/writeReasons';

const SSL = 'Error: C0B7F1D6E17F0000:error:0A000418:SSL routines:ssl3_read_bytes';

describe("the writer's reasons", () => {
  const cases: Array<[string, string]> = [
    [
      `14 UNAVAILABLE: No connection established. Last error: ${SSL}:tlsv1 alert unknown ca`,
      TLS_REFUSED,
    ],
    [
      `14 UNAVAILABLE: No connection established. Last error: ${SSL}:tlsv13 alert certificate required`,
      TLS_REFUSED,
    ],
    [
      `14 UNAVAILABLE: No connection established. Last error: ${SSL}:sslv3 alert bad certificate`,
      TLS_REFUSED,
    ],
    [
      '14 UNAVAILABLE: No connection established. Last error: Error: certificate has expired',
      TLS_REFUSED,
    ],
    [
      '14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate',
      TLS_REFUSED,
    ],
    // A handshake cut short is not taken for a restart either.
    [
      'Client network socket disconnected before secure TLS connection was established',
      TLS_REFUSED,
    ],
    ['14 UNAVAILABLE: Connection dropped', 'endpoint down'],
    [
      '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.1.241:2379',
      'endpoint down',
    ],
    [
      '13 INTERNAL: Received RST_STREAM with code 2 triggered by internal client error',
      'endpoint down',
    ],
    ['13 INTERNAL: Received HTTP status code 200', 'endpoint down'],
    ['etcdserver: leader changed', 'leader changed'],
    ['etcdserver: raft proposal dropped', 'leader changed'],
    ['4 DEADLINE_EXCEEDED: Deadline exceeded after 2.001s', 'timeout'],
  ];
  for (const [message, reason] of cases)
    it(`${reason}: ${message.slice(0, 70)}`, () => {
      assert.equal(reasonOf(new Error(message)), reason);
    });

  it('a TLS refusal is never among the retries a rolling change may cause', () => {
    assert.equal(ROLLING_RETRIES.has(TLS_REFUSED), false);
    assert.deepEqual([...ROLLING_RETRIES].sort(), ['endpoint down', 'leader changed', 'timeout']);
  });
});
