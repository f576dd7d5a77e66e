/**
 * Entry of the performance-check worker thread (dist/perfWorker.js in the bundles; the .ts file
 * under tsx). perf.ts starts it with the run's configuration as `workerData`; it answers with
 * messages of type {@link PerfWorkerMessage} and stops the load on `{ type: 'cancel' }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runPerfLoad } from './engine';
import { type PerfEngineConfig, type PerfEngineEvent, type PerfOutcome } from './config';

export type PerfWorkerMessage =
  PerfEngineEvent | { type: 'outcome'; outcome: PerfOutcome } | { type: 'failed'; message: string };

export type PerfWorkerCommand = { type: 'cancel' };

function main(port: NonNullable<typeof parentPort>): void {
  // etcd3 sets the TLS server name of IP endpoints; Node's DEP0123 warning about it is noise
  // (as in the CLI's main.ts). Other warnings still go to stderr.
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if ((w as NodeJS.ErrnoException).code !== 'DEP0123')
      process.stderr.write(`${w.name}: ${w.message}\n`);
  });
  const abort = new AbortController();
  const post = (m: PerfWorkerMessage) => port.postMessage(m);
  port.on('message', (m: PerfWorkerCommand) => {
    if (m.type === 'cancel') abort.abort();
  });
  runPerfLoad(workerData as PerfEngineConfig, {
    signal: abort.signal,
    onEvent: (e) => post(e),
  }).then(
    (outcome) => post({ type: 'outcome', outcome }),
    (err: unknown) =>
      post({ type: 'failed', message: err instanceof Error ? err.message : String(err) }),
  );
}

if (parentPort) main(parentPort);
