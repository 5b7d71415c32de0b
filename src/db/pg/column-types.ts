/**
 * SQL types as the row hashes see them: a class per family of types, and for each class a
 * 64-bit hash that is equal exactly when the values' content is. Both sides hash values of the
 * target's types (the source casts to them). Where a type's own hash function (that of its hash
 * indexes) agrees with content equality it is used, being several times cheaper than hashing
 * text; elsewhere the text output is hashed.
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
 * A 64-bit hash of `value` (an SQL expression) of class `cls`, seeded so that equal values in
 * different columns hash differently. NULL stays NULL. Needs PostgreSQL 11 or later.
 */
export function hashExpression(value: string, cls: TypeClass, seed: number): string {
  const s = String(seed);
  switch (cls) {
    case 'integer':
      return `hashint8extended(${value}::int8, ${s})`;
    case 'text':
      // Content, not the collation's equality: a nondeterministic collation or citext would
      // hash 'abc' and 'ABC' alike.
      return `hashtextextended((${value})::text COLLATE "C", ${s})`;
    case 'bool':
      return `hashint4extended(${value}::int4, ${s})`;
    case 'timestamptz':
      return `timestamp_hash_extended(${value} AT TIME ZONE 'UTC', ${s})`;
    case 'timestamp':
      return `timestamp_hash_extended(${value}, ${s})`;
    case 'date':
      return `timestamp_hash_extended(${value}::timestamp, ${s})`;
    case 'bytea':
      return `hashtextextended(encode(${value}, 'hex'), ${s})`;
    default:
      // numeric (scale counts), float (-0, NaN), json (bytes) and every other type: the hash of
      // the text output, which with the pinned settings says the value's content exactly.
      return `hashtextextended((${value})::text COLLATE "C", ${s})`;
  }
}

/**
 * One 64-bit hash of several values: their seeded hashes combined with XOR, a NULL standing for
 * a constant of its own so that NULL, '' and 0 stay apart. Values that are `neverNull` hash the
 * same without that stand-in, and cost less.
 */
export function combinedHash(
  values: readonly { readonly value: string; readonly cls: TypeClass }[],
  seedBase: number,
  neverNull = false,
): string {
  return values
    .map(({ value, cls }, i) => {
      const hash = hashExpression(value, cls, seedBase + i);
      return neverNull ? hash : `COALESCE(${hash}, ${-(seedBase + i + 1)})`;
    })
    .join(' # ');
}

/** `"column"` qualified by a relation alias. */
export function columnOf(alias: string, column: string): string {
  return `${quoteIdent(alias)}.${quoteIdent(column)}`;
}
