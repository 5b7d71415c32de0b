/**
 * PostgreSQL text values ↔ the JS values a user's zod schema expects. Values travel as
 * PostgreSQL's own text output (read under pinned session settings), so decoding depends only on
 * the column's type, never on a driver's type parsers or the session's display settings.
 *
 * A schema is handed the value in the first form it accepts (a `z.number()` gets a number for an
 * `integer`, a `z.string()` the text, a `z.date()` a Date), so no library-specific schema is
 * needed. The schema validates; unless it transforms the value, the text the source sent is what
 * is written, so nothing is lost to a JS representation (microseconds behind a Date, digits of a
 * JSON number beyond a double).
 */
import { parse as parseArrayLiteral } from 'postgres-array';
import type { ColumnInfo } from '../db/types.js';

/** A column's text value, or `null` for SQL NULL. */
export type TextValue = string | null;

/** One way to present a text value to a schema, or `undefined` when the text does not fit it. */
type Candidate = (text: string) => unknown;

/** A value that does not fit a candidate form. */
const NO_FIT = Symbol('no fit');

const INTEGER_TEXT = /^-?\d+$/;

const asText: Candidate = (text) => text;

const asNumber: Candidate = (text) => {
  if (text === 'NaN') return Number.NaN;
  if (text === 'Infinity') return Number.POSITIVE_INFINITY;
  if (text === '-Infinity') return Number.NEGATIVE_INFINITY;
  const value = Number(text);
  return Number.isNaN(value) ? NO_FIT : value;
};

/** An integer as a number only when the number is that integer: never a rounded id. */
const asSafeInteger: Candidate = (text) => {
  if (!INTEGER_TEXT.test(text)) return NO_FIT;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : NO_FIT;
};

const asBigInt: Candidate = (text) => (INTEGER_TEXT.test(text) ? BigInt(text) : NO_FIT);

const asBoolean: Candidate = (text) =>
  text === 't' || text === 'true' ? true : text === 'f' || text === 'false' ? false : NO_FIT;

const DATE_TIME =
  /^(\d{4,})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?)?(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?( BC)?$/;

/**
 * A date or timestamp in ISO output (DateStyle ISO, TimeZone UTC) as a Date. A Date holds
 * milliseconds: the schema sees the value to that precision, the text is what is synced.
 */
const asDate: Candidate = (text) => {
  const match = DATE_TIME.exec(text);
  if (!match) return NO_FIT;
  const [
    ,
    y,
    mo,
    d,
    h = '0',
    mi = '0',
    s = '0',
    fraction = '',
    sign,
    oh = '0',
    om = '0',
    os = '0',
  ] = match;
  const year = match[12] ? 1 - Number(y) : Number(y);
  const date = new Date(0);
  date.setUTCFullYear(year, Number(mo) - 1, Number(d));
  const offset = (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60 + Number(os));
  date.setUTCHours(
    Number(h),
    Number(mi),
    Number(s) - (sign ? offset : 0),
    Number(fraction.padEnd(3, '0').slice(0, 3)),
  );
  return Number.isNaN(date.getTime()) ? NO_FIT : date;
};

const asJson: Candidate = (text) => {
  try {
    return JSON.parse(text);
  } catch {
    return NO_FIT;
  }
};

const asBytes: Candidate = (text) =>
  text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex') : NO_FIT;

/** The forms to try for a scalar type, most natural first; the text itself is always last. */
function scalarCandidates(typeName: string): readonly Candidate[] {
  switch (typeName) {
    case 'int2':
    case 'int4':
    case 'oid':
    case 'int8':
      return [asSafeInteger, asBigInt, asText];
    case 'float4':
    case 'float8':
      return [asNumber, asText];
    case 'numeric':
      return [asText, asNumber];
    case 'bool':
      return [asBoolean, asText];
    case 'date':
    case 'timestamp':
    case 'timestamptz':
      return [asDate, asText];
    case 'json':
    case 'jsonb':
      return [asJson, asText];
    case 'bytea':
      return [asBytes, asText];
    default:
      return [asText];
  }
}

/** How to present a column's text values: candidate forms, in order. */
export interface ColumnDecoder {
  readonly candidates: readonly Candidate[];
  /** Whether a JS number stands for this column's integers (so a larger one is an error). */
  readonly integer: boolean;
}

/** A column's type as `pg_type.typname` (`int8`, `_text`…), as far as its description tells. */
export function typeNameOf(info: ColumnInfo | undefined): string {
  const { typeName, element } = typeNames(info);
  return typeName === 'array' ? `_${element ?? 'text'}` : typeName;
}

/** The type names a column description gives, normalised to `pg_type.typname`. */
function typeNames(info: ColumnInfo | undefined): { typeName: string; element?: string } {
  const typeName = (
    info?.typeName ??
    ALIASES[info?.type ?? ''] ??
    info?.type ??
    'text'
  ).toLowerCase();
  if (info?.category === 'A' || typeName.startsWith('_') || info?.type.endsWith('[]')) {
    const element =
      info?.elementTypeName ??
      (typeName.startsWith('_')
        ? typeName.slice(1)
        : ALIASES[info?.type.replace(/\[\]$/, '') ?? '']);
    return { typeName: 'array', element: element ?? 'text' };
  }
  return { typeName };
}

// Names information_schema and format_type use, for engines whose catalog gives only those.
const ALIASES: Record<string, string> = {
  smallint: 'int2',
  integer: 'int4',
  bigint: 'int8',
  real: 'float4',
  'double precision': 'float8',
  boolean: 'bool',
  'timestamp with time zone': 'timestamptz',
  'timestamp without time zone': 'timestamp',
  text: 'text',
  numeric: 'numeric',
  date: 'date',
  json: 'json',
  jsonb: 'jsonb',
  bytea: 'bytea',
};

export function columnDecoder(info: ColumnInfo | undefined): ColumnDecoder {
  const { typeName, element } = typeNames(info);
  if (typeName === 'array') {
    const inner = scalarCandidates(element ?? 'text')[0] ?? asText;
    const asArray: Candidate = (text) => {
      try {
        let fits = true;
        const parsed = parseArrayLiteral(text, (item) => {
          const value = inner(item);
          if (value === NO_FIT) fits = false;
          return value;
        });
        return fits ? parsed : NO_FIT;
      } catch {
        return NO_FIT;
      }
    };
    const asTextArray: Candidate = (text) => {
      try {
        return parseArrayLiteral(text);
      } catch {
        return NO_FIT;
      }
    };
    return { candidates: [asArray, asTextArray, asText], integer: false };
  }
  return {
    candidates: scalarCandidates(typeName),
    integer: ['int2', 'int4', 'int8', 'oid'].includes(typeName),
  };
}

/** Every form of `text` the decoder offers, in order; forms the text does not fit are left out. */
export function decodedForms(decoder: ColumnDecoder, text: string): unknown[] {
  const forms: unknown[] = [];
  for (const candidate of decoder.candidates) {
    const value = candidate(text);
    if (value !== NO_FIT) forms.push(value);
  }
  return forms;
}

/**
 * Whether a schema's output is the value it was given, so the source's text can be written as
 * it is: the same primitive, an equal Date, equal bytes, or structurally equal JSON-like data.
 */
export function sameValue(output: unknown, input: unknown): boolean {
  if (Object.is(output, input)) return true;
  if (typeof output !== 'object' || typeof input !== 'object' || output === null || input === null)
    return false;
  if (output instanceof Date || input instanceof Date)
    return output instanceof Date && input instanceof Date && output.getTime() === input.getTime();
  if (output instanceof Uint8Array || input instanceof Uint8Array)
    return (
      output instanceof Uint8Array &&
      input instanceof Uint8Array &&
      Buffer.from(output).equals(Buffer.from(input))
    );
  if (Array.isArray(output) !== Array.isArray(input)) return false;
  if (Array.isArray(output)) {
    const other = input as unknown[];
    return output.length === other.length && output.every((item, i) => sameValue(item, other[i]));
  }
  const a = Object.entries(output as Record<string, unknown>).filter(([, v]) => v !== undefined);
  const b = input as Record<string, unknown>;
  const bKeys = Object.keys(b).filter((key) => b[key] !== undefined);
  return (
    a.length === bKeys.length && a.every(([key, value]) => key in b && sameValue(value, b[key]))
  );
}

/**
 * A schema's output as the text PostgreSQL reads back for a column: what is written when the
 * schema transforms a value. JSON columns get JSON text (bigints as digits); array columns an
 * array literal.
 */
export function encodeValue(value: unknown, info: ColumnInfo | undefined): TextValue {
  if (value === null || value === undefined) return null;
  const { typeName } = typeNames(info);
  if (typeName === 'json' || typeName === 'jsonb')
    return typeof value === 'string' && !isJsonText(value)
      ? JSON.stringify(value)
      : jsonText(value);
  if (Array.isArray(value) && typeName === 'array') return arrayLiteral(value);
  return scalarText(value);
}

function isJsonText(text: string): boolean {
  return asJson(text) !== NO_FIT;
}

function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  return jsonText(value);
}

/** JSON text of a value, bigints as their digits (JSON.stringify refuses them). */
function jsonText(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? 'null' : jsonText(item))).join(',')}]`;
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const entries = Object.entries(value as Record<string, unknown>).filter(
      ([, v]) => v !== undefined,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A PostgreSQL array literal with every element quoted: `{"1","a b",NULL}`. */
export function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((item) => {
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item)) return arrayLiteral(item);
    return `"${scalarText(item).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${items.join(',')}}`;
}
