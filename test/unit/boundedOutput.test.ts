/**
 * A root command's output kept within a bound (src/core/ssh/boundedOutput.ts), as the settings
 * read and the certificate read use it: a host that prints too much has its command stopped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { boundedOutput } from '../../src/core/ssh/boundedOutput';

const write = (o: ReturnType<typeof boundedOutput>, text: string) =>
  new Promise<void>((resolve, reject) =>
    o.sink.write(Buffer.from(text), (err) => (err ? reject(err) : resolve())),
  );

describe('bounded output of a root command', () => {
  it('keeps what fits, stops the command past the bound and says so', async () => {
    const o = boundedOutput(10);
    await write(o, 'hello ');
    await write(o, 'you');
    assert.equal(o.text(), 'hello you');
    assert.equal(o.overflow, false);
    assert.equal(o.signal.aborted, false);
    await write(o, ' and more');
    assert.equal(o.overflow, true, 'past 10 bytes');
    assert.equal(o.signal.aborted, true, "the command's signal aborts");
    assert.equal(o.text(), 'hello you', 'nothing past the bound is kept');
  });

  it("follows the caller's cancel until disposed", () => {
    const caller = new AbortController();
    const o = boundedOutput(10, caller.signal);
    caller.abort();
    assert.equal(o.signal.aborted, true);
    assert.equal(o.overflow, false, 'a cancel is not an overflow');
    const later = new AbortController();
    const p = boundedOutput(10, later.signal);
    p.dispose();
    later.abort();
    assert.equal(p.signal.aborted, false, 'disposed: no longer follows');
  });
});
