/**
 * etcd's v3 messages for the one-shot calls (health, status, member list, alarms) and the
 * performance check's look at, count and delete of its prefix, encoded and
 * decoded by field number from etcd's rpc.proto (api/etcdserverpb, the same in 3.4 and 3.5), so
 * nothing parses a .proto file at run time. The decoded shapes are those etcd3's client gives
 * (uint64 as decimal strings, enums by name, defaults filled in), so the rows built from them
 * do not change. Answers are hostile input: wire.ts bounds every length.
 */
import { fields, text, uint64Text, type Field } from './wire';

/** etcd3's `IMember`. */
export interface RpcMember {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** etcd3's `IStatusResponse`, the fields the status rows read. */
export interface RpcStatus {
  header: { cluster_id: string; member_id: string; revision: string; raft_term: string };
  version: string;
  dbSize: string;
  leader: string;
  raftIndex: string;
  raftTerm: string;
  raftAppliedIndex: string;
  errors: string[];
  dbSizeInUse: string;
  isLearner: boolean;
}

export interface RpcAlarm {
  memberID: string;
  /** `NONE`, `NOSPACE`, `CORRUPT`, or the number of an alarm this code does not know. */
  alarm: string;
}

export interface RpcKeyValue {
  key: Buffer;
  value: Buffer;
}

// ---- encoding (requests) ----

function tag(no: number, wire: 0 | 2): number[] {
  return varint(no * 8 + wire);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** RangeRequest { key = 1; serializable = 7 }: one key, linearizable unless asked otherwise. */
export function encodeRangeRequest(key: string, opts: { serializable?: boolean } = {}): Buffer {
  const k = Buffer.from(key, 'utf8');
  return Buffer.from([
    ...tag(1, 2),
    ...varint(k.length),
    ...k,
    ...(opts.serializable ? [...tag(7, 0), 1] : []),
  ]);
}

function bytesField(no: number, b: Uint8Array): number[] {
  return [...tag(no, 2), ...varint(b.length), ...b];
}

/**
 * RangeRequest over [key, rangeEnd) { key = 1; range_end = 2; limit = 3; keys_only = 8;
 * count_only = 9 }: the performance check's look for keys under its prefix (limit 1, keys only)
 * and its count after the clean-up (count only). Defaults are left out, as protobuf does.
 */
export function encodeRangeOverRequest(
  key: Uint8Array,
  rangeEnd: Uint8Array,
  opts: { limit?: number; keysOnly?: boolean; countOnly?: boolean } = {},
): Buffer {
  return Buffer.from([
    ...bytesField(1, key),
    ...bytesField(2, rangeEnd),
    ...(opts.limit ? [...tag(3, 0), ...varint(opts.limit)] : []),
    ...(opts.keysOnly ? [...tag(8, 0), 1] : []),
    ...(opts.countOnly ? [...tag(9, 0), 1] : []),
  ]);
}

/** DeleteRangeRequest { key = 1; range_end = 2 }: every key in [key, rangeEnd), no prev_kv. */
export function encodeDeleteRangeRequest(key: Uint8Array, rangeEnd: Uint8Array): Buffer {
  return Buffer.from([...bytesField(1, key), ...bytesField(2, rangeEnd)]);
}

/**
 * MemberListRequest {}, StatusRequest {}, and AlarmRequest { action = GET, memberID = 0,
 * alarm = NONE }: every field at its default, so each is the empty message.
 */
export const EMPTY_REQUEST = Buffer.alloc(0);

// ---- decoding (responses) ----

const u64 = (buf: Uint8Array, f: Field): string => (f.wire === 0 ? uint64Text(buf, f.at) : '0');
const bool = (f: Field): boolean => f.wire === 0 && f.num !== 0;
const str = (f: Field): string => (f.wire === 2 ? text(f.bytes) : '');

function decodeMember(buf: Uint8Array): RpcMember {
  const m: RpcMember = { ID: '0', name: '', peerURLs: [], clientURLs: [], isLearner: false };
  for (const f of fields(buf)) {
    if (f.no === 1) m.ID = u64(buf, f);
    else if (f.no === 2) m.name = str(f);
    else if (f.no === 3) m.peerURLs.push(str(f));
    else if (f.no === 4) m.clientURLs.push(str(f));
    else if (f.no === 5) m.isLearner = bool(f);
  }
  return m;
}

/** MemberListResponse { header = 1; repeated Member members = 2 }. */
export function decodeMemberList(buf: Uint8Array): { members: RpcMember[] } {
  const members: RpcMember[] = [];
  for (const f of fields(buf)) if (f.no === 2 && f.bytes) members.push(decodeMember(f.bytes));
  return { members };
}

function decodeHeader(buf: Uint8Array): RpcStatus['header'] {
  const h = { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' };
  for (const f of fields(buf)) {
    if (f.no === 1) h.cluster_id = u64(buf, f);
    else if (f.no === 2) h.member_id = u64(buf, f);
    else if (f.no === 3) h.revision = u64(buf, f);
    else if (f.no === 4) h.raft_term = u64(buf, f);
  }
  return h;
}

/** StatusResponse (etcd 3.4: fields 1-10; later fields are skipped). */
export function decodeStatus(buf: Uint8Array): RpcStatus {
  const s: RpcStatus = {
    header: { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' },
    version: '',
    dbSize: '0',
    leader: '0',
    raftIndex: '0',
    raftTerm: '0',
    raftAppliedIndex: '0',
    errors: [],
    dbSizeInUse: '0',
    isLearner: false,
  };
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) s.header = decodeHeader(f.bytes);
    else if (f.no === 2) s.version = str(f);
    else if (f.no === 3) s.dbSize = u64(buf, f);
    else if (f.no === 4) s.leader = u64(buf, f);
    else if (f.no === 5) s.raftIndex = u64(buf, f);
    else if (f.no === 6) s.raftTerm = u64(buf, f);
    else if (f.no === 7) s.raftAppliedIndex = u64(buf, f);
    else if (f.no === 8) s.errors.push(str(f));
    else if (f.no === 9) s.dbSizeInUse = u64(buf, f);
    else if (f.no === 10) s.isLearner = bool(f);
  }
  return s;
}

const ALARM_NAMES = ['NONE', 'NOSPACE', 'CORRUPT'];

/** AlarmResponse { header = 1; repeated AlarmMember alarms = 2 { memberID = 1; alarm = 2 } }. */
export function decodeAlarms(buf: Uint8Array): { alarms: RpcAlarm[] } {
  const alarms: RpcAlarm[] = [];
  for (const f of fields(buf)) {
    if (f.no !== 2 || !f.bytes) continue;
    const a: RpcAlarm = { memberID: '0', alarm: 'NONE' };
    for (const g of fields(f.bytes)) {
      if (g.no === 1) a.memberID = u64(f.bytes, g);
      else if (g.no === 2 && g.wire === 0) a.alarm = ALARM_NAMES[g.num] ?? String(g.num);
    }
    alarms.push(a);
  }
  return { alarms };
}

/** RangeResponse { header = 1; repeated KeyValue kvs = 2 { key = 1; value = 5 }; count = 4 }. */
export function decodeRange(buf: Uint8Array): { kvs: RpcKeyValue[]; count: string } {
  const kvs: RpcKeyValue[] = [];
  let count = '0';
  for (const f of fields(buf)) {
    if (f.no === 4) count = u64(buf, f);
    if (f.no !== 2 || !f.bytes) continue;
    const kv: RpcKeyValue = { key: Buffer.alloc(0), value: Buffer.alloc(0) };
    for (const g of fields(f.bytes)) {
      if (g.no === 1 && g.bytes) kv.key = Buffer.from(g.bytes);
      else if (g.no === 5 && g.bytes) kv.value = Buffer.from(g.bytes);
    }
    kvs.push(kv);
  }
  return { kvs, count };
}

/** DeleteRangeResponse { header = 1 { revision = 3 }; deleted = 2 }, as decimal strings. */
export function decodeDeleteRange(buf: Uint8Array): { deleted: string; revision: string } {
  let deleted = '0';
  let revision = '0';
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) revision = decodeHeader(f.bytes).revision;
    else if (f.no === 2) deleted = u64(buf, f);
  }
  return { deleted, revision };
}
