import { parse as parseArrayLiteral } from 'postgres-array';
import { z } from 'zod/v4';
import type * as core from 'zod/v4/core';
import { JsonNull, type JsonNullValue } from './json-null.js';
import {
  toBigInt,
  toBoolean,
  toDateText,
  toDouble,
  toInteger,
  toNumericText,
  toTimestampText,
  toTimestamptzText,
} from './pg-values.js';

/** Schemas whose parsing only normalises a driver's form, never changes or rejects a value. */
/** Which `col` schema a schema is: the SQL types whose every value it accepts follow from it. */
const exactSchemas = new WeakMap<object, keyof typeof IMPLIED_BY>();

/** For each `col` schema, the column types (`typname`) all of whose values it accepts. */
const IMPLIED_BY = {
  text: undefined,
  int: ['int2', 'int4'],
  bigint: ['int2', 'int4', 'int8'],
  numeric: ['int2', 'int4', 'int8', 'numeric'],
  double: ['float4', 'float8'],
  boolean: ['bool'],
  timestamp: ['timestamp'],
  timestamptz: ['timestamptz'],
  date: ['date'],
  json: ['json', 'jsonb'],
} as const satisfies Record<string, readonly string[] | undefined>;

function exact<S extends core.$ZodType>(kind: keyof typeof IMPLIED_BY, schema: S): S {
  exactSchemas.set(schema, kind);
  return schema;
}

/**
 * Whether a `col` schema (unwrapped of nullable/optional) accepts every non-NULL value of a
 * column of this type, so validating it could only pass: `col.text()` any type, `col.int()` an
 * integer column, and so on.
 */
export function acceptsEveryValue(schema: core.$ZodType, typeName: string | undefined): boolean {
  const kind = exactKind(schema);
  if (kind === undefined) return false;
  const types: readonly string[] | undefined = IMPLIED_BY[kind];
  return types === undefined || (typeName !== undefined && types.includes(typeName));
}

/**
 * Whether a column schema is one of `col`'s (optionally `.nullable()` / `.optional()`, without
 * refinements): those read PostgreSQL's text output themselves and only normalise its form, so
 * the text the source sent is what is written.
 */
export function isExactColumn(schema: core.$ZodType): boolean {
  return exactKind(schema) !== undefined;
}

/**
 * Which `col` schema a column schema is, through `.nullable()` / `.optional()`; undefined for any
 * other schema or for one refined anywhere. By the schema's kind, not `instanceof`: the schema
 * may come from the project's zod build.
 */
function exactKind(schema: core.$ZodType): keyof typeof IMPLIED_BY | undefined {
  const checked = (type: core.$ZodType) => (type._zod.def.checks ?? []).length > 0;
  let inner: core.$ZodType = schema;
  while (inner._zod.def.type === 'nullable' || inner._zod.def.type === 'optional') {
    if (checked(inner)) return undefined;
    inner = (inner._zod.def as core.$ZodNullableDef | core.$ZodOptionalDef).innerType;
  }
  return checked(inner) ? undefined : exactSchemas.get(inner);
}

/**
 * zod schemas for PostgreSQL column types. Each accepts every form a driver may hand back for
 * its type (PostgreSQL's exact text output, or the JS values pg-mem produces) and yields one
 * canonical JS value, so that equal values compare equal whichever side they came from.
 *
 * Use them in `defineEntity({ columns: z.object({ … }) })`; plain zod schemas work too, but
 * then the comparison is only as exact as the schema's output.
 *
 * @example
 * ```ts
 * const columns = z.object({
 *   register_id: col.bigint(),
 *   unit: col.text().nullable(),
 *   register: col.int(),
 *   updated_at: col.timestamptz(),
 * });
 * ```
 */
export const col = {
  /** `text`, `varchar`, `char`, `uuid`, `inet`…: a string. */
  text: (): z.ZodString => exact('text', z.string()),
  /** `smallint` / `integer`: a JS number; accepts `'502'` as well as `502`. */
  int: (): z.ZodType<number, unknown> =>
    exact('int', z.preprocess(toInteger, z.number().int().min(-2147483648).max(2147483647))),
  /** `bigint`: a JS `bigint`, exact beyond 2^53. */
  bigint: (): z.ZodType<bigint, unknown> => exact('bigint', z.preprocess(toBigInt, z.bigint())),
  /** `numeric` / `decimal`: a decimal string without insignificant zeros (`'1.5'`, never a float). */
  numeric: (): z.ZodType<string, unknown> =>
    exact('numeric', z.preprocess(toNumericText, z.string())),
  /** `real` / `double precision`: a JS number, NaN and ±Infinity included. */
  double: (): z.ZodType<number, unknown> =>
    exact(
      'double',
      z.preprocess(
        toDouble,
        // NaN and ±Infinity are float8 values too; z.number() refuses them.
        z.custom<number>((value) => typeof value === 'number', 'expected a number'),
      ),
    ),
  /** `boolean`. */
  boolean: (): z.ZodType<boolean, unknown> =>
    exact('boolean', z.preprocess(toBoolean, z.boolean())),
  /** `timestamp without time zone`: `'YYYY-MM-DDTHH:MM:SS.ffffff'`, microseconds kept. */
  timestamp: (): z.ZodType<string, unknown> =>
    exact('timestamp', z.preprocess(toTimestampText, z.string())),
  /** `timestamp with time zone`: the instant in UTC, `'YYYY-MM-DDTHH:MM:SS.ffffffZ'`. */
  timestamptz: (): z.ZodType<string, unknown> =>
    exact('timestamptz', z.preprocess(toTimestamptzText, z.string())),
  /** `date`: `'YYYY-MM-DD'`, never shifted by the process's time zone. */
  date: (): z.ZodType<string, unknown> => exact('date', z.preprocess(toDateText, z.string())),
  /**
   * `json` / `jsonb`: any JSON value, compared by content, not key order. The JSON value `null`
   * reads as {@link JsonNull}, so it stays distinct from SQL NULL.
   */
  json: (): z.ZodType<JsonNullValue | core.util.JSONType> =>
    exact(
      'json',
      z.preprocess(
        fromJsonText,
        z.union([z.custom<JsonNullValue>((value) => value === JsonNull), z.json()]),
      ),
    ) as unknown as z.ZodType<JsonNullValue | core.util.JSONType>,
  /** A PostgreSQL array of `element`; accepts a JS array or an array literal such as `'{1,2}'`. */
  array: <Element extends z.ZodType>(
    element: Element,
  ): z.ZodType<core.output<Element>[], unknown> =>
    z.preprocess(
      (value) =>
        typeof value === 'string' && value.startsWith('{') ? parseArrayLiteral(value) : value,
      z.array(element),
    ),
} as const;

/** PostgreSQL's text of a json value as the value; JSON `null` as {@link JsonNull}. */
function fromJsonText(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    const parsed: unknown = JSON.parse(value);
    return parsed === null ? JsonNull : parsed;
  } catch {
    return value;
  }
}
