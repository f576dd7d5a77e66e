/**
 * A local TCP port forwarding to `host:port` as the SSH host sees it: how an etcd client reaches
 * a member on its own loopback (K3s's embedded etcd, a member whose address changed).
 */
import { createServer, type Server } from 'node:net';
import type { SshSession } from './session';

/** A local TCP port that forwards to `host:port` as seen from the SSH host (for etcd3 over a tunnel). */
export async function tunnel(
  session: SshSession,
  host: string,
  port: number,
): Promise<{ port: number; close(): void }> {
  const server: Server = createServer((sock) => {
    session.forwardOut(host, port).then(
      (remote) => {
        sock.pipe(remote).pipe(sock);
        remote.on('error', () => sock.destroy());
        sock.on('error', () => remote.destroy());
      },
      () => sock.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    close: () => server.close(),
  };
}
