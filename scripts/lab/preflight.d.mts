/** Types of preflight.mjs (plain JavaScript so that it runs before `npm ci`). */
export interface MachineFacts {
  platform: string;
  uid: number | undefined;
  hasNspawn: boolean;
  /** systemd-nspawn is missing but apt-get can install it (Debian's systemd-container). */
  canInstallNspawn: boolean;
}
export function labPreflight(facts: MachineFacts): string[];
export function refusalText(reasons: readonly string[], opts: { vsix: string }): string;
export function machineFacts(): MachineFacts;
