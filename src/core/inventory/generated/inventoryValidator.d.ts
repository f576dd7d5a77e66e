import type { ErrorObject } from 'ajv';

/** Standalone validator generated from schemas/k3s-etcd.schema.json (see scripts/gen-validator.ts). */
interface InventoryValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}
declare const validate: InventoryValidator;
export default validate;
