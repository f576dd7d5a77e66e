/**
 * The performance check's writes on the wire (src/core/perf/wire.ts): gRPC Put calls on a plain
 * HTTP/2 session, answered by a small h2c gRPC server on loopback that plays etcd's part (it
 * checks the request as etcd would read it and answers OK, an etcd error, or never).
 */
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GRPC_PREFIX_BYTES, decodeGrpcMessage, grpcErrorText } from '../../src/core/etcd/grpcWire';
import { PutChannel } from '../../src/core/perf/wire';
import { PutEncoder } from '../../src/core/perf/connections';

const PREFIX = '/etcdctl-check-perf/';

let server: http2.Http2Server;
let endpoint = '';
const received: Buffer[] = [];

before(async () => {
  server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push(body);
      const ok =
        headers[':method'] === 'POST' &&
        headers[':path'] === '/etcdserverpb.KV/Put' &&
        headers['content-type'] === 'application/grpc' &&
        headers['te'] === 'trailers' &&
        body[0] === 0 &&
        body.readUInt32BE(1) === body.length - GRPC_PREFIX_BYTES;
      const key = body
        .subarray(GRPC_PREFIX_BYTES + 3, GRPC_PREFIX_BYTES + 3 + PREFIX.length + 4)
        .toString('latin1');
      if (key.startsWith(`${PREFIX}hang`)) return; // never answers
      if (!ok) {
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '3',
            'grpc-message': 'bad request',
          },
          { endStream: true },
        );
        return;
      }
      if (key.startsWith(`${PREFIX}f`)) {
        // Trailers-only, as etcd answers an error; the message percent-encoded.
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '8',
            'grpc-message': 'etcdserver: mvcc: database space exceeded %25',
          },
          { endStream: true },
        );
        return;
      }
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc' },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x00])); // PutResponse{header: {}}
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

/** A channel whose answers are collected by token. */
function channel(ep = endpoint) {
  const answers = new Map<string, Error | null>();
  const waiters = new Map<string, () => void>();
  const ch = new PutChannel<string>(ep, undefined, (token, err) => {
    answers.set(token, err);
    waiters.get(token)?.();
  });
  const answer = (token: string) =>
    answers.has(token)
      ? Promise.resolve(answers.get(token) ?? null)
      : new Promise<Error | null>((r) => waiters.set(token, () => r(answers.get(token) ?? null)));
  return { ch, answer };
}

/** A framed PutRequest whose key starts with PREFIX + `first`. */
function frameWithKey(first: string): Buffer {
  const frame = new PutEncoder(Buffer.from(PREFIX)).nextFrame();
  frame.write(first, GRPC_PREFIX_BYTES + 3 + PREFIX.length);
  return frame;
}

describe('perf check writes on the wire', () => {
  it('frames each PutRequest for gRPC: flag 0, big-endian length, then the message', () => {
    const enc = new PutEncoder(Buffer.from(PREFIX));
    const frame = enc.nextFrame();
    assert.equal(frame[0], 0);
    assert.equal(frame.readUInt32BE(1), frame.length - GRPC_PREFIX_BYTES);
    const msg = frame.subarray(GRPC_PREFIX_BYTES);
    assert.equal(msg[0], 0x0a);
    assert.equal(enc.keyOf(msg).subarray(0, PREFIX.length).toString(), PREFIX);
    assert.equal(msg.length, 3 + PREFIX.length + 256 + 3 + 1024);
  });

  it('words errors as grpc-js does and decodes grpc-message', () => {
    assert.equal(grpcErrorText(8, 'x'), '8 RESOURCE_EXHAUSTED: x');
    assert.equal(grpcErrorText(14, 'y'), '14 UNAVAILABLE: y');
    assert.equal(grpcErrorText(99, 'z'), '99 UNKNOWN: z');
    assert.equal(decodeGrpcMessage('a%20b%25'), 'a b%');
    assert.equal(decodeGrpcMessage('100%'), '100%'); // not valid percent-encoding: as is
    assert.equal(decodeGrpcMessage(undefined), '');
  });

  it('answers OK, an etcd error in etcd words, and CANCELLED for a cancelled call', async () => {
    const { ch, answer } = channel();
    try {
      await ch.ready;
      ch.put(frameWithKey('a'), 'ok');
      ch.put(frameWithKey('f'), 'full');
      const hung = ch.put(frameWithKey('hang'), 'hung');
      assert.equal(await answer('ok'), null);
      assert.equal(
        (await answer('full'))?.message,
        '8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded %',
      );
      assert.ok(hung);
      ch.cancel(hung);
      assert.equal((await answer('hung'))?.message, '1 CANCELLED: Cancelled on client');
      assert.ok(received.length >= 3);
    } finally {
      ch.close();
    }
  });

  it('a refused connection rejects ready and answers each write UNAVAILABLE, never twice', async () => {
    const dead = http2.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const { ch, answer } = channel(`http://127.0.0.1:${port}`);
    try {
      await assert.rejects(ch.ready, /ECONNREFUSED/);
      ch.put(frameWithKey('a'), 'w1');
      ch.put(frameWithKey('b'), 'w2');
      assert.match((await answer('w1'))?.message ?? '', /^14 UNAVAILABLE: .*ECONNREFUSED/);
      assert.match((await answer('w2'))?.message ?? '', /^14 UNAVAILABLE: /);
    } finally {
      ch.close();
    }
  });
});
