/**
 * A small, bounded reader of the protobuf wire format: the values Kubernetes keeps in etcd
 * (keyspace/) and etcd's own answers to the one-shot calls (rpcMessages.ts).
 * Everything it reads came from etcd and is hostile: a length is never trusted beyond the
 * buffer, a varint is at most 10 bytes, and a malformed message ends the walk with a WireError
 * (the caller keeps what it decoded before). No schema: callers pick fields by number.
 */

export class WireError extends Error {}

/** Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 (3 and 4, groups, are refused). */
export type WireType = 0 | 1 | 2 | 5;

export interface Field {
  no: number;
  wire: WireType;
  /** A varint's value (wire 0; above 2^53 it loses precision), or 0. */
  num: number;
  /** The bytes of a length-delimited field (wire 2; a view into the buffer), or undefined. */
  bytes?: Uint8Array;
  /** Where the field's value starts in the buffer and how long it is (every wire type). */
  at: number;
  size: number;
}

/** Reads a varint at `pos`: [value, next position]. Negative int64 (10 bytes) come back negative. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw new WireError('truncated varint');
    const b = buf[pos + i]!;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) {
      // Ten bytes: a negative int64 (two's complement), exact through BigInt.
      if (i === 9) value = Number(BigInt.asIntN(64, bigVarint(buf, pos)));
      return [value, pos + i + 1];
    }
  }
  throw new WireError('varint longer than 10 bytes');
}

/**
 * A uint64 varint (etcd's member IDs, revisions, raft indexes) exactly, as the decimal string
 * etcd's clients give; `at` is where the varint starts (a `Field`'s `at`).
 */
export function uint64Text(buf: Uint8Array, at: number): string {
  let v = 0n;
  for (let i = 0; i < 10 && at + i < buf.length; i++) {
    const b = buf[at + i]!;
    v |= BigInt(b & 0x7f) << BigInt(7 * i);
    if ((b & 0x80) === 0) break;
  }
  return BigInt.asUintN(64, v).toString(10);
}

function bigVarint(buf: Uint8Array, pos: number): bigint {
  let v = 0n;
  for (let i = 0; i < 10; i++) v |= BigInt(buf[pos + i]! & 0x7f) << BigInt(7 * i);
  return v;
}

/** The fields of one message, in order; throws WireError at the first malformed one. */
export function* fields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  while (pos < buf.length) {
    const [tag, afterTag] = readVarint(buf, pos);
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no < 1 || no > 536_870_911) throw new WireError(`field number ${no} out of range`);
    pos = afterTag;
    if (wire === 0) {
      const [num, next] = readVarint(buf, pos);
      yield { no, wire, num, at: pos, size: next - pos };
      pos = next;
    } else if (wire === 2) {
      const [len, start] = readVarint(buf, pos);
      if (len < 0 || len > buf.length - start)
        throw new WireError(`field ${no} claims ${len} bytes, ${buf.length - start} remain`);
      yield { no, wire, num: 0, bytes: buf.subarray(start, start + len), at: start, size: len };
      pos = start + len;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      if (pos + size > buf.length) throw new WireError(`truncated fixed${size * 8} field ${no}`);
      yield { no, wire, num: 0, at: pos, size };
      pos += size;
    } else {
      throw new WireError(`unsupported wire type ${wire} (field ${no})`);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** A string field's text (invalid UTF-8 becomes U+FFFD; control characters are the caller's job). */
export function text(bytes: Uint8Array | undefined): string {
  return bytes ? utf8.decode(bytes) : '';
}

/**
 * The fields of `buf` collected by number (the last one wins, as protobuf merges scalars), with
 * whether the message ended malformed. Used for small headers, never for the bulk of a value.
 */
export function collect(buf: Uint8Array): { byNo: Map<number, Field>; error?: string } {
  const byNo = new Map<number, Field>();
  try {
    for (const f of fields(buf)) byNo.set(f.no, f);
    return { byNo };
  } catch (err) {
    return { byNo, error: err instanceof WireError ? err.message : String(err) };
  }
}
