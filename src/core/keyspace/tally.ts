/**
 * The aggregates of a keyspace scan, fed one key-value pair at a time and holding no value:
 * keys and bytes by resource and by namespace, a top-N min-heap of the largest values, keys and
 * bytes per lease, and Secrets encrypted at rest or not. Memory is bounded by the caps below
 * (a hostile keyspace of a million distinct "resources" folds the excess into one row).
 * "Bytes" of a key are its key plus its value, as etcd stores them (what `etcdctl get -w json`
 * shows, base64-decoded).
 */
import {
  classify,
  encryptionOf,
  headerOf,
  placeOfKey,
  type Encryption,
  type ObjectHeader,
  type ValueEncoding,
} from './envelope';

export interface KvLike {
  key: Buffer;
  value: Buffer;
  lease?: string;
  mod_revision?: string;
  create_revision?: string;
  version?: string;
}

export interface ResourceUsage {
  resource: string;
  keys: number;
  /** Key plus value bytes. */
  bytes: number;
  /** The largest value of this resource. */
  largest: number;
  /** From the first value that decoded. */
  apiVersion?: string;
  kind?: string;
  encodings: Partial<Record<ValueEncoding, number>>;
}

export interface NamespaceUsage {
  namespace: string;
  keys: number;
  bytes: number;
}

export interface TopKey {
  key: string;
  resource: string;
  namespace?: string;
  name: string;
  /** Key plus value bytes. */
  bytes: number;
  valueBytes: number;
  encoding: ValueEncoding;
  /** Object metadata only (a Secret's data is never read into it). */
  object: ObjectHeader;
  encryption?: Encryption;
  modRevision?: string;
  version?: string;
  /** Hex, as etcdctl shows leases. */
  lease?: string;
}

export interface LeaseUsage {
  /** Hex, as etcdctl shows it. */
  id: string;
  keys: number;
  bytes: number;
  /** The first few resources of its keys. */
  resources: string[];
  /** Seconds left and granted (TimeToLive), when asked. */
  ttl?: number;
  grantedTtl?: number;
}

export interface SecretsAtRest {
  total: number;
  encrypted: number;
  plain: number;
  /** `aescbc:key1`, one per provider and key seen. */
  providers: string[];
}

export const CAPS = { resources: 5000, namespaces: 20_000, leases: 100_000 };
const OTHER = '(other)';

/** A min-heap by bytes of at most `n` entries. */
class TopHeap {
  readonly items: TopKey[] = [];
  constructor(private readonly n: number) {}
  /** Whether a value of `bytes` would enter the heap. */
  wants(bytes: number): boolean {
    return this.n > 0 && (this.items.length < this.n || bytes > this.items[0]!.bytes);
  }
  push(t: TopKey): void {
    const a = this.items;
    if (a.length < this.n) {
      a.push(t);
      for (let i = a.length - 1; i > 0;) {
        const p = (i - 1) >> 1;
        if (a[p]!.bytes <= a[i]!.bytes) break;
        [a[p], a[i]] = [a[i]!, a[p]!];
        i = p;
      }
      return;
    }
    a[0] = t;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l]!.bytes < a[m]!.bytes) m = l;
      if (r < a.length && a[r]!.bytes < a[m]!.bytes) m = r;
      if (m === i) break;
      [a[m], a[i]] = [a[i]!, a[m]!];
      i = m;
    }
  }
  sorted(): TopKey[] {
    return [...this.items].sort((x, y) => y.bytes - x.bytes || (x.key < y.key ? -1 : 1));
  }
}

const hexLease = (lease: string | undefined) =>
  lease && lease !== '0' ? BigInt(lease).toString(16) : undefined;

export class KeyspaceTally {
  keys = 0;
  bytes = 0;
  valueBytes = 0;
  /** Set when a cap folded rows into "(other)". */
  folded = false;
  private readonly resources = new Map<string, ResourceUsage>();
  private readonly namespaces = new Map<string, NamespaceUsage>();
  private readonly leases = new Map<string, LeaseUsage>();
  private readonly heap: TopHeap;
  readonly secrets: SecretsAtRest = { total: 0, encrypted: 0, plain: 0, providers: [] };

  constructor(top: number) {
    this.heap = new TopHeap(top);
  }

  add(kv: KvLike): void {
    const keyText = kv.key.toString('utf8');
    const place = placeOfKey(keyText);
    const size = kv.key.length + kv.value.length;
    const encoding = classify(kv.value);
    this.keys++;
    this.bytes += size;
    this.valueBytes += kv.value.length;

    let r = this.resources.get(place.resource);
    if (!r) {
      const name = this.resources.size < CAPS.resources ? place.resource : this.fold(OTHER);
      r = this.resources.get(name) ?? {
        resource: name,
        keys: 0,
        bytes: 0,
        largest: 0,
        encodings: {},
      };
      this.resources.set(name, r);
    }
    r.keys++;
    r.bytes += size;
    r.largest = Math.max(r.largest, kv.value.length);
    r.encodings[encoding] = (r.encodings[encoding] ?? 0) + 1;
    if (
      r.kind === undefined &&
      (encoding === 'protobuf' || (encoding === 'json' && kv.value.length < 65_536))
    ) {
      const h = headerOf(kv.value, encoding);
      if (h.kind) r.kind = h.kind;
      if (h.apiVersion) r.apiVersion = h.apiVersion;
    }

    if (place.namespace !== undefined) {
      let n = this.namespaces.get(place.namespace);
      if (!n) {
        const name = this.namespaces.size < CAPS.namespaces ? place.namespace : this.fold(OTHER);
        n = this.namespaces.get(name) ?? { namespace: name, keys: 0, bytes: 0 };
        this.namespaces.set(name, n);
      }
      n.keys++;
      n.bytes += size;
    }

    // Keyed by etcd's decimal id while scanning (hex only for the rows shown: BigInt is slow).
    const lease = kv.lease && kv.lease !== '0' ? kv.lease : undefined;
    if (lease) {
      let l = this.leases.get(lease);
      if (!l) {
        const id = this.leases.size < CAPS.leases ? lease : this.fold(OTHER);
        l = this.leases.get(id) ?? { id, keys: 0, bytes: 0, resources: [] };
        this.leases.set(id, l);
      }
      l.keys++;
      l.bytes += size;
      if (l.resources.length < 5 && !l.resources.includes(place.resource))
        l.resources.push(place.resource);
    }

    let encryption: Encryption | undefined;
    if (encoding === 'encrypted') encryption = encryptionOf(kv.value);
    if (place.resource === 'secrets') {
      this.secrets.total++;
      if (encryption) {
        this.secrets.encrypted++;
        const p = `${encryption.provider}${encryption.key ? `:${encryption.key}` : ''}`;
        if (!this.secrets.providers.includes(p) && this.secrets.providers.length < 20)
          this.secrets.providers.push(p);
      } else this.secrets.plain++;
    }

    if (this.heap.wants(size)) {
      this.heap.push({
        key: keyText.length > 1024 ? `${keyText.slice(0, 1024)}…` : keyText,
        resource: place.resource,
        ...(place.namespace !== undefined ? { namespace: place.namespace } : {}),
        name: place.name,
        bytes: size,
        valueBytes: kv.value.length,
        encoding,
        object: headerOf(kv.value, encoding),
        ...(encryption ? { encryption } : {}),
        ...(kv.mod_revision ? { modRevision: kv.mod_revision } : {}),
        ...(kv.version ? { version: kv.version } : {}),
        ...(lease ? { lease: hexLease(lease)! } : {}),
      });
    }
  }

  private fold(name: string): string {
    this.folded = true;
    return name;
  }

  resourceRows(): ResourceUsage[] {
    return [...this.resources.values()].sort(byBytes((r) => r.resource));
  }
  namespaceRows(): NamespaceUsage[] {
    return [...this.namespaces.values()].sort(byBytes((n) => n.namespace));
  }
  leaseRows(): LeaseUsage[] {
    return [...this.leases.values()]
      .map((l) => (l.id === OTHER ? { ...l } : { ...l, id: hexLease(l.id)! }))
      .sort((a, b) => b.keys - a.keys || b.bytes - a.bytes || (a.id < b.id ? -1 : 1));
  }
  topKeys(): TopKey[] {
    return this.heap.sorted();
  }
}

const byBytes =
  <T extends { bytes: number }>(name: (t: T) => string) =>
  (a: T, b: T) =>
    b.bytes - a.bytes || (name(a) < name(b) ? -1 : 1);
