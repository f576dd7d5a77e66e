/**
 * A root command's standard output, kept up to `max` bytes: a host that prints more than it was
 * asked for (broken or hostile) has its command stopped there instead of filling memory.
 */
import { Writable } from 'node:stream';

export interface BoundedOutput {
  /** Give it to `exec` as `stdoutStream`. */
  readonly sink: Writable;
  /** Give it to `exec`: aborted past `max` bytes, or when the caller's signal is. */
  readonly signal: AbortSignal;
  /** Whether the output passed `max` (the command was stopped for it). */
  readonly overflow: boolean;
  /** What was kept, as UTF-8. */
  text(): string;
  /** Stops following the caller's signal. */
  dispose(): void;
}

export function boundedOutput(max: number, outer?: AbortSignal): BoundedOutput {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  outer?.addEventListener('abort', onAbort, { once: true });
  const chunks: Buffer[] = [];
  let size = 0;
  let overflow = false;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (size + chunk.length > max) {
        overflow = true;
        stop.abort();
      } else {
        chunks.push(chunk);
        size += chunk.length;
      }
      done();
    },
  });
  return {
    sink,
    signal: stop.signal,
    get overflow() {
      return overflow;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
    dispose: () => outer?.removeEventListener('abort', onAbort),
  };
}
