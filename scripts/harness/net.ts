/** Loopback helpers for tests, benchmarks and the lab: a free port, an HTTP status probe. */
import { get } from 'node:http';
import { createServer } from 'node:net';

/** A port nothing listens on at `host` right now (the OS picks it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = createServer();
  const port = await new Promise<number>((res, rej) => {
    srv.once('error', rej);
    srv.listen(0, host, () => {
      const a = srv.address();
      if (a === null || typeof a === 'string') rej(new Error('no port'));
      else res(a.port);
    });
  });
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** The HTTP status of a GET, or 0 when nothing answers within `timeoutMs`. */
export function httpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((res) => {
    const req = get(url, { timeout: timeoutMs }, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(0));
  });
}
