/**
 * SQL types as the set-based path sees them: a class per family of types, and for each class
 * (1) a 64-bit hash that is equal for equal values on both sides even when the sides' types
 * differ a little (int vs bigint, varchar vs text, json vs jsonb, numeric(12,4) vs numeric), and
 * (2) a text form that the other side reads back exactly whatever its TimeZone or DateStyle.
 * The hashes are PostgreSQL's own typed hash functions (those of its hash indexes), which are
 * consistent with the types' equality and several times cheaper than hashing text.
 */
import { quoteIdent } from './sql.js';

/** A column's type as the catalog names it. */
export interface SqlType {
  /** `pg_type.typname`, e.g. `int8`, `varchar`, `_text`. */
  readonly typeName: string;
  /** `pg_type.typcategory`: `A` for arrays. */
  readonly category: string;
  /** For arrays, the element's `typname`. */
  readonly elementTypeName?: string | undefined;
  /** The type as `format_type` prints it, e.g. `numeric(12,4)`, usable in a cast. */
  readonly formatted: string;
}

export type TypeClass =
  | 'integer'
  | 'numeric'
  | 'float'
  | 'text'
  | 'bool'
  | 'timestamptz'
  | 'timestamp'
  | 'date'
  | 'json'
  | 'bytea'
  | `array:${string}`
  | `other:${string}`;

const SCALAR_CLASSES: Record<string, TypeClass> = {
  int2: 'integer',
  int4: 'integer',
  int8: 'integer',
  oid: 'integer',
  numeric: 'numeric',
  float4: 'float',
  float8: 'float',
  text: 'text',
  varchar: 'text',
  bpchar: 'text',
  name: 'text',
  citext: 'text',
  bool: 'bool',
  timestamptz: 'timestamptz',
  timestamp: 'timestamp',
  date: 'date',
  json: 'json',
  jsonb: 'json',
  bytea: 'bytea',
};

function scalarClass(typeName: string): TypeClass {
  return SCALAR_CLASSES[typeName] ?? `other:${typeName}`;
}

export function typeClass(type: SqlType): TypeClass {
  if (type.category === 'A') return `array:${scalarClass(type.elementTypeName ?? type.typeName)}`;
  return scalarClass(type.typeName);
}

/**
 * The class both sides' values are brought to for comparison, or undefined when no canonical
 * text can make equal values equal (e.g. text on one side, integer on the other).
 */
export function commonClass(source: SqlType, target: SqlType): TypeClass | undefined {
  const a = typeClass(source);
  const b = typeClass(target);
  if (a === b) return a;
  const numeric = new Set<TypeClass>(['integer', 'numeric']);
  if (numeric.has(a) && numeric.has(b)) return 'numeric';
  return undefined;
}

/**
 * A 64-bit hash of `value` (an SQL expression) of class `cls`, seeded so that equal values in
 * different columns hash differently. NULL stays NULL. Needs PostgreSQL 11 or later.
 */
export function hashExpression(value: string, cls: TypeClass, seed: number): string {
  const s = String(seed);
  switch (cls) {
    case 'integer':
      return `hashint8extended(${value}::int8, ${s})`;
    case 'numeric':
      return `hash_numeric_extended(${value}::numeric, ${s})`;
    case 'float':
      return `hashfloat8extended(${value}::float8, ${s})`;
    case 'text':
      return `hashtextextended(${value}::text, ${s})`;
    case 'bool':
      return `hashint4extended(${value}::int4, ${s})`;
    case 'timestamptz':
      return `timestamp_hash_extended(${value} AT TIME ZONE 'UTC', ${s})`;
    case 'timestamp':
      return `timestamp_hash_extended(${value}, ${s})`;
    case 'date':
      return `timestamp_hash_extended(${value}::timestamp, ${s})`;
    case 'json':
      return `jsonb_hash_extended(${value}::jsonb, ${s})`;
    case 'bytea':
      return `hashtextextended(encode(${value}, 'hex'), ${s})`;
    default:
      return `hashtextextended(${value}::text, ${s})`;
  }
}

/**
 * One 64-bit hash of several values: their seeded hashes combined with XOR, a NULL standing for
 * a constant of its own so that NULL, '' and 0 stay apart.
 */
export function combinedHash(
  values: readonly { readonly value: string; readonly cls: TypeClass }[],
  seedBase: number,
): string {
  return values
    .map(
      ({ value, cls }, i) =>
        `COALESCE(${hashExpression(value, cls, seedBase + i)}, ${-(seedBase + i + 1)})`,
    )
    .join(' # ');
}

// Era suffixes keep BC dates apart; explicit formats ignore DateStyle; UTC ignores TimeZone.
const TIMESTAMPTZ_TEXT = `'YYYY-MM-DD HH24:MI:SS.US"+00" BC'`;
const TIMESTAMP_TEXT = `'YYYY-MM-DD HH24:MI:SS.US BC'`;
const DATE_TEXT = `'YYYY-MM-DD BC'`;

/**
 * The source-side expression whose text form the target's COPY reads back exactly: date and time
 * types in explicit formats (to_char yields NULL for infinity, so the plain text stands in), the
 * rest as they are (their own text output).
 */
export function transferText(value: string, cls: TypeClass): string {
  switch (cls) {
    case 'timestamptz':
      return `COALESCE(to_char(${value} AT TIME ZONE 'UTC', ${TIMESTAMPTZ_TEXT}), ${value}::text)`;
    case 'timestamp':
      return `COALESCE(to_char(${value}, ${TIMESTAMP_TEXT}), ${value}::text)`;
    case 'date':
      return `COALESCE(to_char(${value}, ${DATE_TEXT}), ${value}::text)`;
    default:
      return value;
  }
}

/** `"column"` qualified by a relation alias. */
export function columnOf(alias: string, column: string): string {
  return `${quoteIdent(alias)}.${quoteIdent(column)}`;
}
