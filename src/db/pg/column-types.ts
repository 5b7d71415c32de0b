/**
 * SQL types as the set-based path sees them: a class per family of types, and for each class the
 * SQL expression that turns a value into canonical text. Equal values give equal text on both
 * sides even when the sides' types differ a little (int vs bigint, varchar vs text, json vs jsonb,
 * numeric(12,4) vs numeric), and the text reads back the same whatever the session's TimeZone or
 * DateStyle.
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

// Era suffixes keep BC dates apart; explicit formats ignore DateStyle; UTC ignores TimeZone.
const TIMESTAMPTZ_TEXT = `'YYYY-MM-DD HH24:MI:SS.US"+00" BC'`;
const TIMESTAMP_TEXT = `'YYYY-MM-DD HH24:MI:SS.US BC'`;
const DATE_TEXT = `'YYYY-MM-DD BC'`;

/**
 * Canonical text of `value` (an SQL expression) for comparison. `to_char` yields NULL for
 * infinity, so the plain text form stands in for it.
 */
export function canonicalText(value: string, cls: TypeClass, trimScale: boolean): string {
  switch (cls) {
    case 'integer':
    case 'float':
    case 'text':
    case 'bool':
      return `${value}::text`;
    case 'numeric':
      return trimScale
        ? `trim_scale(${value}::numeric)::text`
        : `(CASE WHEN ${value}::text LIKE '%.%' THEN rtrim(rtrim(${value}::text, '0'), '.') ELSE ${value}::text END)`;
    case 'timestamptz':
      return `COALESCE(to_char(${value} AT TIME ZONE 'UTC', ${TIMESTAMPTZ_TEXT}), ${value}::text)`;
    case 'timestamp':
      return `COALESCE(to_char(${value}, ${TIMESTAMP_TEXT}), ${value}::text)`;
    case 'date':
      return `COALESCE(to_char(${value}, ${DATE_TEXT}), ${value}::text)`;
    case 'json':
      return `${value}::jsonb::text`;
    case 'bytea':
      return `encode(${value}, 'hex')`;
    default:
      return `${value}::text`;
  }
}

/**
 * The source-side expression whose text form the target's COPY reads back exactly: date and time
 * types in explicit formats, everything else as it is (its own text output).
 */
export function transferText(value: string, cls: TypeClass): string {
  switch (cls) {
    case 'timestamptz':
    case 'timestamp':
    case 'date':
      return canonicalText(value, cls, false);
    default:
      return value;
  }
}

/** `"column"` qualified by a relation alias. */
export function columnOf(alias: string, column: string): string {
  return `${quoteIdent(alias)}.${quoteIdent(column)}`;
}
