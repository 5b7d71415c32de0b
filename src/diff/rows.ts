import type { z } from 'zod/v4';
import type { AnyEntity, RowOf } from '../entity/types.js';
import { DataError, formatKey, formatValue } from '../errors.js';
import { type Canonical, canonical, encodeKey } from './canonical.js';

/** A row ready for diffing: its parsed values, its encoded key and one canonical value per column. */
export interface PreparedRow<Row = Record<string, unknown>> {
  /** The encoded key (see `encodeKey`). */
  readonly key: string;
  /** The row as the schema parsed it: what gets written. */
  readonly row: Row;
  /** Canonical values in `entity.columnNames` order. */
  readonly values: readonly Canonical[];
}

/** A canonical value no parsed value produces: marks a stored value the schema rejects. */
const UNREADABLE = '\u0000unreadable';

/** The key columns and values of a row, for messages. */
export function keyOf(
  entity: AnyEntity,
  row: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  return Object.fromEntries(entity.key.map((column) => [column, row[column]]));
}

/** The key of a prepared row as `column=value` text, for messages and samples. */
export function describeKey(entity: AnyEntity, row: Readonly<Record<string, unknown>>): string {
  return formatKey(keyOf(entity, row));
}

function keyIndexes(entity: AnyEntity): number[] {
  return entity.key.map((column) => entity.columnNames.indexOf(column));
}

/** What source rows are checked against besides the schema, and what to do with a bad one. */
export interface SourceChecks {
  /** The run's tenant (canonical): a row of another tenant is invalid. */
  readonly tenant?: Canonical | undefined;
  /** Character limits of the target's columns (`character varying(n)`, `character(n)`). */
  readonly maxLengths?: ReadonlyMap<string, number>;
  /** Called with each invalid row, which is then left out; without it the first one throws. */
  readonly skip?: (error: DataError) => void;
}

/**
 * Parses source rows through the entity's schema and checks them: a row that fails the schema,
 * has a NULL key, lies outside the tenant, holds a value too long for its target column, or
 * repeats a key is invalid. By default the first one throws, since applying part of an entity
 * would hide it; with `skip`, invalid rows (every row of a repeated key) are left out.
 *
 * @throws {DataError} naming the entity, the row's key and the column.
 */
export function prepareSourceRows<E extends AnyEntity>(
  entity: E,
  rawRows: Iterable<Readonly<Record<string, unknown>>>,
  checks: SourceChecks = {},
): PreparedRow<RowOf<E>>[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  const prepared: PreparedRow<RowOf<E>>[] = [];
  const keyAt = keyIndexes(entity);
  const tenantAt =
    entity.tenantColumn === undefined ? -1 : entity.columnNames.indexOf(entity.tenantColumn);
  const reject = (error: DataError) => {
    if (!checks.skip) throw error;
    checks.skip(error);
  };
  for (const raw of rawRows) {
    let row: RowOf<E>;
    try {
      row = parseRow(entity, raw, 'source');
    } catch (error) {
      reject(error as DataError);
      continue;
    }
    const values = entity.columnNames.map((column: string) => canonical(row[column]));
    const problem = rowProblem(entity, row, values, keyAt, tenantAt, checks);
    if (problem) {
      reject(problem);
      continue;
    }
    const key = encodeKey(keyAt.map((index) => values[index] ?? null));
    if (seen.has(key)) {
      if (!repeated.has(key)) {
        repeated.add(key);
        reject(
          new DataError(
            `${entity.name}: the source returned key ${describeKey(entity, row)} more than once; the key (${entity.key.join(', ')}) must be unique`,
            { entity: entity.name, key: keyOf(entity, row) },
          ),
        );
      }
      continue;
    }
    seen.add(key);
    prepared.push({ key, row, values });
  }
  return repeated.size === 0 ? prepared : prepared.filter((row) => !repeated.has(row.key));
}

function rowProblem(
  entity: AnyEntity,
  row: Readonly<Record<string, unknown>>,
  values: readonly Canonical[],
  keyAt: readonly number[],
  tenantAt: number,
  checks: SourceChecks,
): DataError | undefined {
  const where = (column: string) => ({ entity: entity.name, key: keyOf(entity, row), column });
  for (const index of keyAt) {
    if (values[index] !== null) continue;
    const column = entity.columnNames[index] as string;
    return new DataError(
      `${entity.name}: source row ${describeKey(entity, row)} has NULL in key column "${column}"`,
      where(column),
    );
  }
  if (checks.tenant !== undefined && tenantAt !== -1 && values[tenantAt] !== checks.tenant) {
    const column = entity.tenantColumn as string;
    return new DataError(
      `${entity.name}: source row ${describeKey(entity, row)} has ${column}=${formatValue(row[column])}, outside tenant ${checks.tenant}; the source query must filter by $1`,
      where(column),
    );
  }
  for (const [column, limit] of checks.maxLengths ?? []) {
    const value = row[column];
    if (typeof value === 'string' && tooLong(value, limit)) {
      return new DataError(
        `${entity.name}: source row ${describeKey(entity, row)} column "${column}" holds ${[...value].length} characters, more than the ${limit} its target column allows (widen the column)`,
        where(column),
      );
    }
  }
  return undefined;
}

/** Longer than `limit` characters, where PostgreSQL would refuse it: excess that is not only spaces. */
export function tooLong(value: string, limit: number): boolean {
  const characters = [...value];
  return (
    characters.length > limit && characters.slice(limit).some((character) => character !== ' ')
  );
}

/** Parses one row, or throws a `DataError` naming the key and the first failing column. */
export function parseRow<E extends AnyEntity>(
  entity: E,
  raw: Readonly<Record<string, unknown>>,
  origin: 'source' | 'stored',
): RowOf<E> {
  const result = (entity.columns as z.ZodObject).safeParse(raw);
  if (result.success) return result.data as RowOf<E>;
  const issue = result.error.issues[0];
  const column = typeof issue?.path[0] === 'string' ? issue.path[0] : undefined;
  const where =
    column === undefined ? '' : ` column "${column}" (value ${formatValue(raw[column])})`;
  const key = readableKey(entity, raw);
  throw new DataError(
    `${entity.name}: ${origin} row ${formatKey(key)}${where} does not match the schema: ${issue?.message ?? result.error.message}`,
    { entity: entity.name, key, column, cause: result.error },
  );
}

/** The key of a row that failed to parse: each key column parsed on its own where it can be. */
function readableKey(
  entity: AnyEntity,
  raw: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const shape = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  return Object.fromEntries(
    entity.key.map((column) => {
      const parsed = shape[column]?.safeParse(raw[column]);
      return [column, parsed?.success ? parsed.data : raw[column]];
    }),
  );
}

/**
 * Prepares target rows leniently: a stored value the schema rejects (a tampered row, a column
 * whose type changed) becomes unreadable and so differs from every source value, and the row is
 * rewritten rather than failing the run.
 */
export function prepareTargetRows<E extends AnyEntity>(
  entity: E,
  rawRows: Iterable<Readonly<Record<string, unknown>>>,
): PreparedRow<RowOf<E>>[] {
  const keyAt = keyIndexes(entity);
  const shape = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  const prepared: PreparedRow<RowOf<E>>[] = [];
  for (const raw of rawRows) {
    const whole = (entity.columns as z.ZodObject).safeParse(raw);
    let row: Record<string, unknown>;
    let values: Canonical[];
    if (whole.success) {
      row = whole.data;
      values = entity.columnNames.map((column: string) => canonical(row[column]));
    } else {
      row = {};
      values = entity.columnNames.map((column: string, index) => {
        const parsed = shape[column]?.safeParse(raw[column]);
        row[column] = parsed?.success ? parsed.data : raw[column];
        if (parsed?.success) return canonical(parsed.data);
        return keyAt.includes(index) ? canonical(raw[column]) : UNREADABLE;
      });
    }
    prepared.push({
      key: encodeKey(keyAt.map((index) => values[index] ?? null)),
      row: row as RowOf<E>,
      values,
    });
  }
  return prepared;
}

/** Canonical values of a subset of columns, parsed through the entity's schema leniently. */
export function canonicalColumns(
  entity: AnyEntity,
  raw: Readonly<Record<string, unknown>>,
  columns: readonly string[],
): Canonical[] {
  const shape = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  return columns.map((column) => {
    const parsed = shape[column]?.safeParse(raw[column]);
    return canonical(parsed?.success ? parsed.data : raw[column]);
  });
}
