/**
 * The member list's hedged ask (src/core/etcd/members.ts `firstAnswer`): one endpoint at a time,
 * the next as well when one fails or is slow, the first answer wins, every failure reported in
 * endpoint order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { firstAnswer } from '../../src/core/etcd/members';

const never = () => new Promise<string>(() => undefined);

describe('firstAnswer', () => {
  it('a healthy first endpoint is the only one asked', async () => {
    const asked: number[] = [];
    const v = await firstAnswer(3, 10, async (i) => {
      asked.push(i);
      return `answer ${i}`;
    });
    assert.equal(v, 'answer 0');
    // Past the hedge: nobody else was asked once the answer came.
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(asked, [0]);
  });

  it('a failing endpoint passes on at once, without waiting for the hedge', async () => {
    const asked: number[] = [];
    const t0 = performance.now();
    const v = await firstAnswer(3, 60_000, async (i) => {
      asked.push(i);
      if (i < 2) throw new Error(`refused ${i}`);
      return 'third';
    });
    assert.equal(v, 'third');
    assert.deepEqual(asked, [0, 1, 2]);
    assert.ok(performance.now() - t0 < 5_000, 'no hedge was waited for');
  });

  it('a silent endpoint is hedged: the next one is asked and its answer wins', async () => {
    const asked: number[] = [];
    const v = await firstAnswer(2, 20, (i) => {
      asked.push(i);
      return i === 0 ? never() : Promise.resolve('second');
    });
    assert.equal(v, 'second');
    assert.deepEqual(asked, [0, 1]);
  });

  it('every endpoint failing: an AggregateError with the reasons in endpoint order', async () => {
    await assert.rejects(
      firstAnswer(3, 5, (i) =>
        i === 0
          ? new Promise<string>((_, reject) => setTimeout(() => reject(new Error('late 0')), 40))
          : Promise.reject(new Error(`refused ${i}`)),
      ),
      (err: unknown) => {
        assert.ok(err instanceof AggregateError);
        assert.deepEqual(
          err.errors.map((e) => (e as Error).message),
          ['late 0', 'refused 1', 'refused 2'],
        );
        return true;
      },
    );
  });
});
