/** The `ip-or-hostname` format of the inventory schema. */
import { isIP } from 'node:net';

const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An IPv4/IPv6 address, or an RFC 1123 hostname that is not a malformed dotted quad. */
export function isIpOrHostname(value: string): boolean {
  if (isIP(value) !== 0) return true;
  // "10.0.0.999" matches the hostname grammar but is clearly a mistyped address.
  if (/^[0-9.]+$/.test(value)) return false;
  return HOSTNAME.test(value);
}

/** Formats as the generated standalone validator looks them up (`formats["ip-or-hostname"]`). */
export const formats = {
  'ip-or-hostname': { type: 'string', validate: isIpOrHostname },
} as const;
