/**
 * etcd releases as data: a version parsed and compared, the release this tool installs by
 * default, the patch releases known to be bad, and the floors Kubernetes puts under the
 * datastore. Pure: no I/O. Every fact names its source; dates are the release tags' dates in
 * github.com/etcd-io/etcd.
 */

export interface EtcdVersion {
  major: number;
  minor: number;
  patch: number;
}

/**
 * The default `etcd.version`: the newest patch of the 3.6 line (v3.6.14, 2026-07-23). 3.6 and 3.7
 * are the two supported minors (3.7.0 came out 2026-07-08); 3.6 is the line K3s embeds itself,
 * has a year of patches, and is at or above 3.6.11, the floor etcd's 3.6 -> 3.7 guide sets, so a
 * later upgrade to 3.7 needs no patch step first.
 */
export const DEFAULT_ETCD_VERSION = 'v3.6.14';

/**
 * The newest patch of each minor this tool knows, from the release tags of etcd-io/etcd
 * (v3.4.45 2026-06-01 is 3.4's last: CHANGELOG-3.4 marks it end of life; v3.5.33, v3.6.14 and
 * v3.7.1 2026-07-23). Upgrade paths step through these.
 */
export const LATEST_PATCH: Readonly<Record<number, number>> = { 4: 45, 5: 33, 6: 14, 7: 1 };

/** `v3.6.14` or `3.6.14` (a pre-release suffix is ignored); undefined when it is not one. */
export function parseEtcdVersion(text: string): EtcdVersion | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$/.exec(text.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

export function compareVersions(a: EtcdVersion, b: EtcdVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export function formatVersion(v: EtcdVersion): string {
  return `v${v.major}.${v.minor}.${v.patch}`;
}

const v3 = (minor: number, patch: number): EtcdVersion => ({ major: 3, minor, patch });

/** Patch ranges of a minor with a known defect (inclusive), each with its reason and source. */
const KNOWN_BAD: ReadonlyArray<{ minor: number; from: number; to: number; reason: string }> = [
  {
    minor: 5,
    from: 0,
    to: 2,
    // CHANGELOG-3.5, v3.5.3: "Fix Inconsistent revision and data occurs" (etcd PR 13908).
    reason:
      'etcd 3.5.0 to 3.5.2 can leave members with inconsistent data (fixed in 3.5.3, etcd PR 13908)',
  },
  {
    minor: 5,
    from: 1,
    to: 19,
    // CHANGELOG-3.5, v3.5.20: "Fix the learner promotion changes not being persisted into v3store"
    // (etcd PR 19563; issue 19557, K3s issue 13485).
    reason:
      'etcd 3.5.1 to 3.5.19 may lose a learner promotion, which breaks a later upgrade to 3.6 (fixed in 3.5.20, etcd PR 19563)',
  },
];

/** Why this version is known to be bad, one sentence per defect; empty when none is known. */
export function knownBadReasons(v: EtcdVersion): string[] {
  return KNOWN_BAD.filter(
    (b) => v.major === 3 && v.minor === b.minor && v.patch >= b.from && v.patch <= b.to,
  ).map((b) => b.reason);
}

/**
 * The lowest patch of each minor that Kubernetes 1.31+ assumes under it: 3.4.29 and 3.5.11 (the
 * project's day-two notes; its consistent list from the watch cache wants 3.4.31 / 3.5.13).
 * 3.6 and later have no floor.
 */
const KUBERNETES_FLOOR: Readonly<Record<number, number>> = { 4: 29, 5: 11 };

/**
 * Why this etcd is below what a K3s on Kubernetes `kubernetesMinor` (1.x; undefined = the
 * installer's stable channel, 1.31 or later) needs, or undefined.
 */
export function kubernetesFloorReason(
  v: EtcdVersion,
  kubernetesMinor: number | undefined,
): string | undefined {
  if (kubernetesMinor !== undefined && kubernetesMinor < 31) return undefined;
  const floors = 'Kubernetes 1.31 and later (K3s v1.31+) assume etcd 3.4.29+ or 3.5.11+';
  if (v.major < 3 || (v.major === 3 && v.minor < 4)) return `${floors}, not ${formatVersion(v)}`;
  if (v.major !== 3) return undefined;
  const floor = KUBERNETES_FLOOR[v.minor];
  if (floor === undefined || v.patch >= floor) return undefined;
  return `${floors}; ${formatVersion(v)} is below ${formatVersion(v3(v.minor, floor))}`;
}

/** The Kubernetes minor of a K3s version such as `v1.31.4+k3s1`, or undefined. */
export function kubernetesMinorOfK3s(k3sVersion: string | undefined): number | undefined {
  const m = k3sVersion ? /^v?1\.(\d+)\./.exec(k3sVersion) : null;
  return m ? Number(m[1]) : undefined;
}

/** The minors this tool renders flags for and plans upgrades between. */
export const KNOWN_MINORS = [4, 5, 6, 7] as const;

export function isKnownMinor(v: EtcdVersion): boolean {
  return v.major === 3 && (KNOWN_MINORS as readonly number[]).includes(v.minor);
}

/** `v3.4.23` is at or above `minor.patch` of its own minor (false for another minor). */
export function atLeastPatch(v: EtcdVersion, minor: number, patch: number): boolean {
  return v.major === 3 && v.minor === minor && v.patch >= patch;
}

export { v3 };
