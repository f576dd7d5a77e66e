/**
 * The same JSON Schema the editor uses for completion (`yamlValidation`) validates at run time.
 * Compiled once, on first use.
 */
import { isIP } from 'node:net';
import Ajv from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import schema from '../../../schemas/k3s-etcd.schema.json';

export const inventorySchema = schema;

const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;

/** An IPv4/IPv6 address, or an RFC 1123 hostname that is not a malformed dotted quad. */
export function isIpOrHostname(value: string): boolean {
  if (isIP(value) !== 0) return true;
  // "10.0.0.999" matches the hostname grammar but is clearly a mistyped address.
  if (/^[0-9.]+$/.test(value)) return false;
  return HOSTNAME.test(value);
}

let validator: ValidateFunction | undefined;

function compile(): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
  ajv.addFormat('ip-or-hostname', { type: 'string', validate: isIpOrHostname });
  return ajv.compile(schema);
}

export function validateSchema(data: unknown): ErrorObject[] {
  validator ??= compile();
  return validator(data) ? [] : [...(validator.errors ?? [])];
}
