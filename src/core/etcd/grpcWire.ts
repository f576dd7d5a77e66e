/**
 * What both of our gRPC-over-HTTP/2 callers share (`rpc.ts`, the one-shot reads; `perf/wire.ts`,
 * the performance check's writes): the 5-byte message prefix, gRPC's status names and errors
 * worded as grpc-js words them (`14 UNAVAILABLE: ...`, which `problems.ts` reads), and the
 * percent-encoded `grpc-message` decoded as etcd sent it.
 */

/** The 5-byte gRPC message prefix: compressed flag, then the length (big-endian). */
export const GRPC_PREFIX_BYTES = 5;

/** gRPC status names, for messages in grpc-js's form. */
const STATUS = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** A gRPC error text as grpc-js words it: `<code> <NAME>: <details>`. */
export function grpcErrorText(code: number, details: string): string {
  return `${code} ${STATUS[code] ?? 'UNKNOWN'}: ${details}`;
}

/** `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses"); invalid encoding as is. */
export function decodeGrpcMessage(raw: unknown): string {
  const s = typeof raw === 'string' ? raw : Array.isArray(raw) ? String(raw[0] ?? '') : '';
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `body` as one uncompressed gRPC message. */
export function grpcFrame(body: Buffer): Buffer {
  const frame = Buffer.alloc(GRPC_PREFIX_BYTES + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, GRPC_PREFIX_BYTES);
  return frame;
}
