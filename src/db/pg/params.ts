import { stableJson } from '../../diff/canonical.js';
import type { ColumnInfo } from '../types.js';

/**
 * Turns a parsed value into a query parameter for a column. JSON columns get JSON text (the
 * driver would send a JS array as a PostgreSQL array); bigints go as exact digits.
 */
export function toParameter(value: unknown, kind: ColumnInfo['kind'] | undefined): unknown {
  if (value === undefined || value === null) return null;
  if (kind === 'json') return stableJson(value);
  return toScalar(value);
}

function toScalar(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toScalar);
  return value;
}
