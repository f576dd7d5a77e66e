/**
 * The upgrade path from one etcd version to another: one minor at a time, each minor left only
 * from the patch floor etcd's upgrade guide sets, or a refusal with the reason. Pure: no I/O.
 */
import {
  LATEST_PATCH,
  compareVersions,
  formatVersion,
  knownBadReasons,
  parseEtcdVersion,
  v3,
  type EtcdVersion,
} from './version';

/**
 * The lowest patch of a minor from which the next minor may be started, with its source.
 * etcd's general policy (upgrading-etcd.md, every docs version): "Update to the most recent
 * patch version before upgrading to the next minor version".
 */
const LEAVE_FLOOR: Readonly<Record<number, { patch: number; source: string }>> = {
  // upgrade_3_5.md sets no patch; 3.4.45 is the last 3.4 (CHANGELOG-3.4: end of life).
  4: { patch: 45, source: "etcd's policy: the most recent 3.4 patch (3.4.45, the last)" },
  // upgrade_3_6.md (etcd-io/website 5a5c2009, 2026-08-03): "all of your 3.5 members are updated
  // to 3.5.32 or later" (it was 3.5.20, then 3.5.24, then 3.5.26: learner and zombie-member
  // fixes; 3.5.32 adds the v2store checks).
  5: { patch: 32, source: "etcd's 3.5 -> 3.6 upgrade guide: 3.5.32 or later" },
  // upgrade_3_7.md: "all of your 3.6 members are updated to 3.6.11 or later".
  6: { patch: 11, source: "etcd's 3.6 -> 3.7 upgrade guide: 3.6.11 or later" },
};

/**
 * The lowest patch of `minor` from which the next minor may be started (`v3.5.32`), as etcd's
 * upgrade guide sets it; undefined for a minor with no floor here.
 */
export function leaveFloor(minor: number): string | undefined {
  const f = LEAVE_FLOOR[minor];
  return f ? formatVersion(v3(minor, f.patch)) : undefined;
}

export interface UpgradeStep {
  from: string;
  to: string;
  kind: 'patch' | 'minor';
  reason: string;
}

export type UpgradePath = { ok: true; steps: UpgradeStep[] } | { ok: false; reason: string };

const refuse = (reason: string): UpgradePath => ({ ok: false, reason });

/**
 * The steps from `fromText` to `toText`. Each minor is left from its floor (a patch step to the
 * newest patch first when below it); a minor between the two is passed at its newest patch.
 * Refused: a version that is not one, a downgrade, versions outside 3.4..3.7, and a target with
 * a known defect.
 */
export function planUpgradePath(fromText: string, toText: string): UpgradePath {
  const from = parseEtcdVersion(fromText);
  const to = parseEtcdVersion(toText);
  if (!from) return refuse(`${JSON.stringify(fromText)} is not an etcd version (v3.x.y)`);
  if (!to) return refuse(`${JSON.stringify(toText)} is not an etcd version (v3.x.y)`);
  const f = formatVersion(from);
  const t = formatVersion(to);
  const order = compareVersions(from, to);
  if (order === 0) return { ok: true, steps: [] };
  if (order > 0) {
    return refuse(
      `${t} is older than ${f}: etcd does not go back by an upgrade (a downgrade needs etcdctl downgrade, one minor at a time, or a snapshot restore)`,
    );
  }
  if (from.major !== 3 || from.minor < 4) {
    return refuse(
      `${f} is older than 3.4: upgrade it to 3.4 by hand first (etcd's 3.3 -> 3.4 guide), then plan from there`,
    );
  }
  if (to.major !== 3 || LATEST_PATCH[to.minor] === undefined) {
    return refuse(`${t} is beyond the etcd releases k3s-etcd knows (3.4 to 3.7)`);
  }
  const bad = knownBadReasons(to);
  if (bad.length > 0) return refuse(`${t} is a bad target: ${bad.join('; ')}`);

  const steps: UpgradeStep[] = [];
  let cur: EtcdVersion = from;
  const step = (next: EtcdVersion, kind: UpgradeStep['kind'], reason: string) => {
    steps.push({ from: formatVersion(cur), to: formatVersion(next), kind, reason });
    cur = next;
  };
  while (cur.minor < to.minor) {
    const floor = LEAVE_FLOOR[cur.minor]!;
    if (cur.patch < floor.patch) {
      const newest = v3(cur.minor, Math.max(LATEST_PATCH[cur.minor]!, floor.patch));
      step(newest, 'patch', `before 3.${cur.minor + 1}: ${floor.source}`);
    }
    const nextMinor = cur.minor + 1;
    const target = nextMinor === to.minor ? to : v3(nextMinor, LATEST_PATCH[nextMinor]!);
    step(
      target,
      'minor',
      nextMinor === to.minor
        ? `one minor at a time: 3.${cur.minor} -> 3.${nextMinor}`
        : `one minor at a time: 3.${cur.minor} -> 3.${nextMinor} at its newest patch, on the way to ${t}`,
    );
  }
  if (compareVersions(cur, to) < 0) step(to, 'patch', `patch upgrade within 3.${to.minor}`);
  return { ok: true, steps };
}
