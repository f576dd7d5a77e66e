/** The `ip-or-hostname` format of the inventory schema, and telling an address's IP version. */
import { isIPv4, isIPv6 } from 'node:net';

/**
 * `net.isIP`, without compiling Node's IPv6 pattern (a large regular expression, milliseconds
 * of a one-shot command's start) for a value that cannot be IPv6: only IPv6 has a colon.
 */
export function ipVersion(value: string): 0 | 4 | 6 {
  if (value.includes(':')) return isIPv6(value) ? 6 : 0;
  return isIPv4(value) ? 4 : 0;
}

const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An IPv4/IPv6 address, or an RFC 1123 hostname that is not a malformed dotted quad. */
export function isIpOrHostname(value: string): boolean {
  if (ipVersion(value) !== 0) return true;
  // "10.0.0.999" matches the hostname grammar but is clearly a mistyped address.
  if (/^[0-9.]+$/.test(value)) return false;
  return HOSTNAME.test(value);
}

/** Formats as the generated standalone validator looks them up (`formats["ip-or-hostname"]`). */
export const formats = {
  'ip-or-hostname': { type: 'string', validate: isIpOrHostname },
} as const;
