/**
 * The JSON Schema the editor uses for completion (`yamlValidation`) also validates at run time,
 * through validation code generated from it at build time (scripts/gen-validator.ts): ajv's
 * compiler never runs in the extension, which keeps activation fast.
 */
import type { ErrorObject } from 'ajv';
import validate from './generated/inventoryValidator';

export { isIpOrHostname } from './addressFormat';

export function validateSchema(data: unknown): ErrorObject[] {
  return validate(data) ? [] : [...(validate.errors ?? [])];
}
