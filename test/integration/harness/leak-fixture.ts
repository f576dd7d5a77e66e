/**
 * Child-process fixture for harness.test.ts: starts a cluster, prints its pids and dir as one
 * JSON line, then leaves without stop() in the way named by argv[2]. The harness's process
 * hooks must still kill every etcd and remove the dir.
 */
import { startEtcdCluster } from '../../../scripts/harness/etcd';

async function main(mode: string): Promise<void> {
  const cluster = await startEtcdCluster({ members: mode === 'sigterm' ? 3 : 1 });
  const report = { pids: cluster.members.map((m) => m.pid), dir: cluster.dir };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  if (mode === 'throw')
    setImmediate(() => {
      throw new Error('test crashed on purpose');
    });
  if (mode === 'sigterm') setInterval(() => undefined, 1000); // stay alive until signalled
  // 'forget': just return; the unref'd etcd must not keep this process alive.
}

void main(process.argv[2] ?? 'forget');
