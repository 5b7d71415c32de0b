import { JsonNull } from '../entity/json-null.js';

/**
 * One comparable string per value, so that values equal in meaning compare equal: `5`, `5n`
 * and `'5'` after schema parsing; JSON objects regardless of key order; dates by instant.
 * `null` stands for SQL NULL.
 */
export type Canonical = string | null;

export function canonical(value: unknown): Canonical {
  if (value === null || value === undefined) return null;
  if (value === JsonNull) return 'null';
  switch (typeof value) {
    case 'string':
      return value;
    case 'bigint':
      return value.toString();
    case 'number':
      return Object.is(value, -0) ? '0' : String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      return stableJson(value);
  }
}

/** JSON with object keys sorted, bigints as digits and bytes as hex: the same text for equal content. */
export function stableJson(value: unknown): string {
  if (value === null || value === undefined || value === JsonNull) return 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number')
    return Number.isFinite(value)
      ? String(Object.is(value, -0) ? 0 : value)
      : JSON.stringify(String(value));
  if (typeof value !== 'object') return JSON.stringify(value);
  if (value instanceof Date)
    return JSON.stringify(Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString());
  if (value instanceof Uint8Array)
    return JSON.stringify(`\\x${Buffer.from(value).toString('hex')}`);
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
}

/** Encodes canonical key values into one map key. */
export function encodeKey(values: readonly Canonical[]): string {
  return JSON.stringify(values);
}
