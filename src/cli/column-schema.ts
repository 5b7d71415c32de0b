import type { z } from 'zod/v4';
import type { CatalogColumn } from '../db/pg/catalog.js';
import { typeClass } from '../db/pg/column-types.js';

/** What a column's zod schema produces, read from its runtime definition (zod 4). */
export interface SchemaShape {
  /** The output's zod type: `number`, `bigint`, `string`, `date`, `boolean`, `array`, … */
  readonly kind: string;
  /** `.nullable()` somewhere on the way: a NULL is accepted. */
  readonly nullable: boolean;
  /** `z.coerce.*`: the value is converted before it is checked. */
  readonly coerce: boolean;
}

type Def = {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  coerce?: boolean;
  getter?: () => z.ZodType;
};

/** Unwraps nullable, optional, default, pipe (preprocess, transform) … down to the output type. */
export function schemaShape(schema: z.ZodType): SchemaShape {
  let current: z.ZodType | undefined = schema;
  let nullable = false;
  for (let depth = 0; current && depth < 32; depth++) {
    const def = current._zod.def as unknown as Def;
    switch (def.type) {
      case 'nullable':
        nullable = true;
        current = def.innerType;
        break;
      case 'optional':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
      case 'nonoptional':
        current = def.innerType;
        break;
      case 'pipe': {
        const out = def.out?._zod.def as unknown as Def | undefined;
        current = out?.type === 'transform' ? def.in : def.out;
        break;
      }
      case 'lazy':
        current = def.getter?.();
        break;
      default:
        return { kind: def.type, nullable, coerce: def.coerce === true };
    }
  }
  return { kind: 'unknown', nullable, coerce: false };
}

/** A finding about one column: an error stops a sync of it; a warning may. */
export interface ColumnVerdict {
  readonly level: 'error' | 'warning';
  readonly message: string;
}

/** 2^53 - 1: the largest integer a JS number holds exactly. */
export const MAX_SAFE = 9007199254740991n;

/**
 * Whether a schema fits a column type. `maxAbs` (for z.number() on bigint) is asked for only
 * when the answer depends on the data.
 */
export async function schemaFitsType(
  shape: SchemaShape,
  column: CatalogColumn,
  maxAbs: () => Promise<string | null>,
): Promise<ColumnVerdict | undefined> {
  const cls = typeClass({
    typeName: column.typeName,
    category: column.category,
    elementTypeName: column.elementTypeName,
    formatted: column.type,
  });
  const on = `z.${shape.kind}() on a ${column.type} column`;
  const error = (message: string): ColumnVerdict => ({ level: 'error', message });
  const warning = (message: string): ColumnVerdict => ({ level: 'warning', message });
  switch (shape.kind) {
    case 'number':
      if (cls === 'float') return undefined;
      if (cls === 'integer') {
        if (column.typeName !== 'int8') return undefined;
        const max = await maxAbs();
        if (max !== null && BigInt(max) > MAX_SAFE) {
          return error(
            `${on}: values reach ${max}, beyond 2^53, so numbers would be rounded; use col.bigint()`,
          );
        }
        return warning(`${on}: exact only up to 2^53 (today's values fit); col.bigint() is exact`);
      }
      if (cls === 'numeric')
        return warning(`${on}: decimals lose precision as JS numbers; use col.numeric()`);
      return error(`${on}: the column does not hold numbers`);
    case 'bigint':
      if (cls === 'integer') return undefined;
      if (cls === 'numeric') return warning(`${on}: a value with decimals would fail the schema`);
      return error(`${on}: the column does not hold integers`);
    case 'string':
      if (cls === 'integer' && column.typeName === 'int8') {
        return warning(`${on}: compared as text; col.bigint() compares as numbers`);
      }
      if (
        cls === 'integer' ||
        cls === 'float' ||
        cls === 'bool' ||
        cls === 'bytea' ||
        cls.startsWith('array:')
      ) {
        return error(
          `${on}: the driver hands back ${cls === 'bool' ? 'booleans' : cls === 'bytea' ? 'Buffers' : cls.startsWith('array:') ? 'arrays' : 'numbers'}, not strings`,
        );
      }
      if (cls === 'json') return warning(`${on}: JSON is parsed by the driver; use col.json()`);
      return undefined;
    case 'date':
      if (cls === 'timestamp' || cls === 'timestamptz' || cls === 'date') {
        return shape.coerce
          ? undefined
          : warning(
              `${on}: meter-sync reads date and time columns as exact text; use col.${cls}() or z.coerce.date()`,
            );
      }
      if (cls === 'text')
        return warning(`${on}: text is not a date; a value that does not parse fails the row`);
      return error(`${on}: the column does not hold dates`);
    case 'boolean':
      return cls === 'bool' ? undefined : error(`${on}: the column does not hold booleans`);
    case 'array':
      return cls.startsWith('array:') ? undefined : error(`${on}: the column is not an array`);
    default:
      return undefined;
  }
}
