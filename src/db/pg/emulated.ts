/**
 * Engines that only emulate PostgreSQL (pg-mem) hand back JS values, not PostgreSQL's text, and
 * have no cursors or hash functions. Their values are turned into the text PostgreSQL would
 * print, so the rows they hold are judged exactly as a server's would be, and their rows are
 * ordered here.
 */
import { parse as parseArrayLiteral } from 'postgres-array';
import { arrayLiteral } from '../../diff/decode.js';
import { compareKeys, type KeyOrder } from '../../diff/merge.js';
import { textHash } from '../text-hash.js';
import type { ColumnInfo, KeyHash, TextRow, TextValue } from '../types.js';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

function dateText(date: Date): string {
  return `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
}

function timeText(date: Date): string {
  const ms = date.getUTCMilliseconds();
  const fraction = ms === 0 ? '' : `.${pad(ms, 3).replace(/0+$/, '')}`;
  return `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}${fraction}`;
}

/** A value as the text PostgreSQL prints for a column of this type (ISO, UTC). */
export function emulatedText(value: unknown, info: ColumnInfo | undefined): TextValue {
  if (value === null || value === undefined) return null;
  const type = (info?.typeName ?? info?.type ?? '').toLowerCase();
  if (value instanceof Date) {
    if (type === 'date') return dateText(value);
    const text = `${dateText(value)} ${timeText(value)}`;
    return type.includes('without') || type === 'timestamp' ? text : `${text}+00`;
  }
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'string') return value;
  if (typeof value === 'number')
    return numberText(value, info?.type.toLowerCase() ?? '', info?.name);
  if (typeof value === 'bigint') return String(value);
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  if (Array.isArray(value) && info?.kind === 'array') return arrayLiteral(value);
  return JSON.stringify(value);
}

/**
 * A number as PostgreSQL prints it for its column: `numeric(p,s)` with its scale. The engine
 * holds integers and numerics as JS numbers, so one beyond 2^53 may not be the value written:
 * refused rather than passed on as if it were.
 */
function numberText(value: number, type: string, column: string | undefined): string {
  const integral = /^(?:bigint|integer|smallint|int[248]?|numeric.*|decimal.*)$/.test(type);
  if (integral && Number.isFinite(value) && Math.abs(value) > Number.MAX_SAFE_INTEGER) {
    throw new Error(
      `column "${column ?? '?'}" holds ${value}, beyond 2^53: pg-mem holds ${type} values as JS numbers, so it may not be the value written; test values beyond 2^53 on PostgreSQL`,
    );
  }
  const scale = /^numeric\(\d+,(\d+)\)$/.exec(type)?.[1];
  return scale === undefined ? String(value) : value.toFixed(Number(scale));
}

/** Rows as text in column order. */
export function emulatedRows(
  rows: readonly Record<string, unknown>[],
  columns: readonly string[],
  description: ReadonlyMap<string, ColumnInfo>,
): TextRow[] {
  return rows.map((row) =>
    columns.map((column) => emulatedText(row[column], description.get(column))),
  );
}

/** Keys and hashes of text rows, in key order; rows with a NULL key are left out. */
export function orderedKeyHashes<R extends KeyHash>(
  rows: readonly TextRow[],
  keyIndexes: readonly number[],
  orders: readonly KeyOrder[],
  make: (key: string[], hash: string, values: TextRow) => R,
): R[] {
  const out: R[] = [];
  for (const values of rows) {
    const key = keyIndexes.map((index) => values[index] ?? null);
    if (key.some((value) => value === null)) continue;
    out.push(make(key as string[], textHash(values), values));
  }
  return out.sort((a, b) => compareKeys(a.key, b.key, orders));
}

/** Whether two texts of a column say the same value: JSON and arrays by content, the rest as text. */
export function sameEmulatedText(
  a: TextValue,
  b: TextValue,
  info: ColumnInfo | undefined,
): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  try {
    if (info?.kind === 'json')
      return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
    if (info?.kind === 'array')
      return JSON.stringify(parseArrayLiteral(a)) === JSON.stringify(parseArrayLiteral(b));
  } catch {
    return false;
  }
  return false;
}
