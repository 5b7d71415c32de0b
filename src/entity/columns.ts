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
const exactSchemas = new WeakSet<object>();

function exact<S extends core.$ZodType>(schema: S): S {
  exactSchemas.add(schema);
  return schema;
}

/**
 * Whether a column schema is one of `col`'s (optionally `.nullable()` / `.optional()`, without
 * refinements): those read PostgreSQL's text output themselves and only normalise its form, so
 * the text the source sent is what is written.
 */
export function isExactColumn(schema: core.$ZodType): boolean {
  // By the schema's kind, not `instanceof`: the schema may come from the project's zod build.
  const checked = (type: core.$ZodType) => (type._zod.def.checks ?? []).length > 0;
  let inner: core.$ZodType = schema;
  while (inner._zod.def.type === 'nullable' || inner._zod.def.type === 'optional') {
    if (checked(inner)) return false;
    inner = (inner._zod.def as core.$ZodNullableDef | core.$ZodOptionalDef).innerType;
  }
  return exactSchemas.has(inner) && !checked(inner);
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
  text: (): z.ZodString => exact(z.string()),
  /** `smallint` / `integer`: a JS number; accepts `'502'` as well as `502`. */
  int: (): z.ZodType<number, unknown> =>
    exact(z.preprocess(toInteger, z.number().int().min(-2147483648).max(2147483647))),
  /** `bigint`: a JS `bigint`, exact beyond 2^53. */
  bigint: (): z.ZodType<bigint, unknown> => exact(z.preprocess(toBigInt, z.bigint())),
  /** `numeric` / `decimal`: a decimal string without insignificant zeros (`'1.5'`, never a float). */
  numeric: (): z.ZodType<string, unknown> => exact(z.preprocess(toNumericText, z.string())),
  /** `real` / `double precision`: a JS number, NaN and ±Infinity included. */
  double: (): z.ZodType<number, unknown> =>
    exact(
      z.preprocess(
        toDouble,
        // NaN and ±Infinity are float8 values too; z.number() refuses them.
        z.custom<number>((value) => typeof value === 'number', 'expected a number'),
      ),
    ),
  /** `boolean`. */
  boolean: (): z.ZodType<boolean, unknown> => exact(z.preprocess(toBoolean, z.boolean())),
  /** `timestamp without time zone`: `'YYYY-MM-DDTHH:MM:SS.ffffff'`, microseconds kept. */
  timestamp: (): z.ZodType<string, unknown> => exact(z.preprocess(toTimestampText, z.string())),
  /** `timestamp with time zone`: the instant in UTC, `'YYYY-MM-DDTHH:MM:SS.ffffffZ'`. */
  timestamptz: (): z.ZodType<string, unknown> => exact(z.preprocess(toTimestamptzText, z.string())),
  /** `date`: `'YYYY-MM-DD'`, never shifted by the process's time zone. */
  date: (): z.ZodType<string, unknown> => exact(z.preprocess(toDateText, z.string())),
  /**
   * `json` / `jsonb`: any JSON value, compared by content, not key order. The JSON value `null`
   * reads as {@link JsonNull}, so it stays distinct from SQL NULL.
   */
  json: (): z.ZodType<JsonNullValue | core.util.JSONType> =>
    exact(
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
