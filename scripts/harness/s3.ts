/**
 * A real S3-compatible server on loopback for tests (s3rver from the npm registry: buckets,
 * SigV4-signed PUT, GET, DELETE and ListObjectsV2 over HTTP), with its data in a temp folder
 * removed on stop.
 */
import { makeTempDir, removeTempDir } from './processes';

export interface S3Server {
  endpoint: string;
  bucket: string;
  /** Object keys under `prefix`, sorted. */
  keys(prefix?: string): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startS3(opts: {
  address: string;
  port: number;
  bucket: string;
}): Promise<S3Server> {
  const dir = await makeTempDir('k3s-etcd-s3-');
  // s3rver is CommonJS without types.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => {
    run(): Promise<unknown>;
    close(): Promise<void>;
  };
  const server = new S3rver({
    address: opts.address,
    port: opts.port,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: opts.bucket }],
  });
  await server.run();
  const endpoint = `http://${opts.address}:${opts.port}`;
  return {
    endpoint,
    bucket: opts.bucket,
    async keys(prefix = '') {
      const r = await fetch(
        `${endpoint}/${opts.bucket}?list-type=2&prefix=${encodeURIComponent(prefix)}`,
      );
      const xml = await r.text();
      return [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!).sort();
    },
    async stop() {
      await server.close().catch(() => undefined);
      await removeTempDir(dir);
    },
  };
}
