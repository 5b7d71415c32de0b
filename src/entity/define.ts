import type { z } from 'zod/v4';
import { DefinitionError } from '../errors.js';
import type {
  ColumnName,
  ColumnsSchema,
  Entity,
  EntityReference,
  EntitySource,
  OnMissing,
  ReferenceInput,
  SourceInput,
  TableName,
} from './types.js';

/** What `defineEntity` takes. Column names are checked against `columns` by the compiler. */
export interface EntityDefinitionInput<
  Name extends string,
  S extends ColumnsSchema,
  K extends string,
  T extends string | undefined,
> {
  /** Unique name, used in results, logs and references. */
  readonly name: Name;
  /** The target table: `'register'`, `'sync.register'` or `{ schema, name }`. */
  readonly table: string | TableName;
  /** A zod object schema of the synced columns (see `col` for PostgreSQL types). */
  readonly columns: S;
  /** The key columns; several make a composite key. */
  readonly key: readonly [K, ...K[]];
  /** The column scoping rows to a tenant. Omit for a global entity. */
  readonly tenantColumn?: T;
  /** How to read the entity on the source. Default: the same table and column names. */
  readonly source?: SourceInput<ColumnName<S>>;
  /** References to parent entities: used for ordering and to skip orphans. */
  readonly references?: readonly ReferenceInput<ColumnName<S>>[];
  /** `'delete'` (default) or a soft delete such as `{ set: { active: false } }`. */
  readonly onMissing?: OnMissing<z.output<S>>;
  /**
   * A source row that breaks the definition (fails the schema, has a NULL or repeated key, holds
   * a value too long for its target column): `'fail'` (default) fails the entity and applies
   * none of it; `'skip'` leaves the row out, counts it as skipped and reports it in one warning.
   */
  readonly invalidRows?: 'fail' | 'skip';
}

/**
 * Defines an entity: a table to keep in step with the source. The definition is checked now,
 * so a mistake surfaces where it is written, never in the middle of a sync.
 *
 * @example
 * ```ts
 * const register = defineEntity({
 *   name: 'register',
 *   table: 'register',
 *   columns: z.object({ register_id: col.bigint(), tenant_id: col.bigint(), unit: col.text().nullable() }),
 *   key: ['register_id'],
 *   tenantColumn: 'tenant_id',
 * });
 * ```
 * @throws {DefinitionError} naming the entity and the field at fault.
 */
export function defineEntity<
  const Name extends string,
  S extends ColumnsSchema,
  const K extends ColumnName<S>,
  const T extends ColumnName<S> | undefined = undefined,
>(definition: EntityDefinitionInput<Name, S, K, T>): Entity<Name, S, K, T> {
  const name = checkName(definition.name);
  const fail = (field: string, problem: string): never => {
    throw new DefinitionError(`entity "${name}": ${field} ${problem}`, { entity: name });
  };

  const shape = shapeOf(definition.columns);
  if (!shape) fail('columns', 'must be a zod object schema, e.g. z.object({ id: col.bigint() })');
  const columnNames = Object.keys(shape ?? {}) as ColumnName<S>[];
  if (columnNames.length === 0) fail('columns', 'must list at least one column');
  const known = new Set<string>(columnNames);
  const mustBeColumn = (field: string, column: unknown) => {
    if (typeof column !== 'string' || !known.has(column)) {
      fail(field, `names "${String(column)}", which is not in columns (${columnNames.join(', ')})`);
    }
  };
  for (const column of columnNames) checkIdentifier(column, `column name "${column}"`, fail);

  const table = parseTableName(definition.table, 'table', fail);

  if (!Array.isArray(definition.key) || definition.key.length === 0) {
    fail('key', 'must list at least one column');
  }
  for (const column of definition.key) mustBeColumn('key', column);
  if (new Set(definition.key).size !== definition.key.length) fail('key', 'lists a column twice');

  const tenantColumn = definition.tenantColumn;
  if (tenantColumn !== undefined) mustBeColumn('tenantColumn', tenantColumn);

  const source = normaliseSource(
    definition.source,
    table,
    tenantColumn !== undefined,
    mustBeColumn,
    fail,
  );
  const references = (definition.references ?? []).map((reference, index) =>
    normaliseReference(reference, `references[${index}]`, mustBeColumn, fail),
  );
  const onMissing = normaliseOnMissing(definition, shape ?? {}, mustBeColumn, fail);

  const invalidRows = definition.invalidRows ?? 'fail';
  if (invalidRows !== 'fail' && invalidRows !== 'skip')
    fail('invalidRows', "must be 'fail' or 'skip'");

  return Object.freeze({
    name: definition.name,
    table,
    columns: definition.columns,
    columnNames: Object.freeze(columnNames),
    key: Object.freeze([...definition.key]),
    tenantColumn: tenantColumn as T,
    source,
    references: Object.freeze(references),
    onMissing,
    invalidRows,
  });
}

type Fail = (field: string, problem: string) => never;

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new DefinitionError(
      `entity name must be a non-empty string, got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

function shapeOf(schema: unknown): Record<string, z.ZodType> | undefined {
  if (typeof schema !== 'object' || schema === null || !('shape' in schema)) return undefined;
  const shape = (schema as { shape: unknown }).shape;
  return typeof shape === 'object' && shape !== null
    ? (shape as Record<string, z.ZodType>)
    : undefined;
}

function checkIdentifier(identifier: string, what: string, fail: Fail) {
  // Identifiers are always quoted in SQL, so any text is safe except an empty one or NUL.
  if (identifier === '' || identifier.includes('\u0000'))
    fail(what, 'must be non-empty and contain no NUL');
}

/** Parses `'schema.table'`, `'table'` or `{ schema, name }`. */
export function parseTableName(input: unknown, field: string, fail: Fail): TableName {
  if (typeof input === 'string') {
    const dot = input.indexOf('.');
    const parsed =
      dot === -1 ? { name: input } : { schema: input.slice(0, dot), name: input.slice(dot + 1) };
    return parseTableName(parsed, field, fail);
  }
  if (
    typeof input !== 'object' ||
    input === null ||
    typeof (input as TableName).name !== 'string'
  ) {
    return fail(field, 'must be a table name such as "register" or "sync.register"');
  }
  const { schema, name } = input as TableName;
  checkIdentifier(name, field, fail);
  if (schema !== undefined) checkIdentifier(schema, `${field} schema`, fail);
  return Object.freeze(schema === undefined ? { name } : { schema, name });
}

const READ_QUERY = /^(select|with|values|table)\b/i;

function normaliseSource(
  input: SourceInput<string> | undefined,
  table: TableName,
  tenantScoped: boolean,
  mustBeColumn: (field: string, column: unknown) => void,
  fail: Fail,
): EntitySource {
  if (input?.query !== undefined) {
    const query = input.query;
    if (typeof query !== 'string' || !READ_QUERY.test(stripLeadingNoise(query))) {
      fail('source.query', 'must be a read-only SELECT (or WITH … SELECT) statement');
    }
    const usesTenant = /\$1(?!\d)/.test(query);
    if (tenantScoped && !usesTenant) {
      fail(
        'source.query',
        'must filter by the tenant with $1, since the entity has a tenantColumn',
      );
    }
    if (/\$(?:[2-9]|1\d)/.test(query))
      fail('source.query', 'may use only the parameter $1 (the tenant id)');
    if (!tenantScoped && usesTenant)
      fail('source.query', 'uses $1, but the entity has no tenantColumn to fill it');
    return Object.freeze({ kind: 'query', query: query.trim().replace(/;\s*$/, '') });
  }
  const sourceTable =
    input?.table === undefined ? table : parseTableName(input.table, 'source.table', fail);
  const columns: Record<string, string> = {};
  for (const [target, remote] of Object.entries(input?.columns ?? {})) {
    mustBeColumn('source.columns', target);
    if (typeof remote !== 'string')
      fail(`source.columns.${target}`, 'must be a source column name');
    checkIdentifier(remote as string, `source.columns.${target}`, fail);
    columns[target] = remote as string;
  }
  return Object.freeze({ kind: 'table', table: sourceTable, columns: Object.freeze(columns) });
}

function stripLeadingNoise(query: string): string {
  let text = query.trimStart();
  for (;;) {
    if (text.startsWith('--'))
      text = text.slice(text.indexOf('\n') === -1 ? text.length : text.indexOf('\n'));
    else if (text.startsWith('/*'))
      text = text.slice(text.indexOf('*/') === -1 ? text.length : text.indexOf('*/') + 2);
    else if (text.startsWith('(')) text = text.slice(1);
    else return text;
    text = text.trimStart();
  }
}

function normaliseReference(
  reference: ReferenceInput<string>,
  field: string,
  mustBeColumn: (field: string, column: unknown) => void,
  fail: Fail,
): EntityReference {
  if (typeof reference?.entity !== 'string' || reference.entity === '') {
    fail(`${field}.entity`, 'must name the referenced entity');
  }
  const pairs = Object.entries(reference.columns ?? {});
  if (pairs.length === 0)
    fail(`${field}.columns`, 'must map at least one column to the parent key');
  for (const [child, parent] of pairs) {
    mustBeColumn(`${field}.columns`, child);
    if (typeof parent !== 'string' || parent === '')
      fail(`${field}.columns.${child}`, 'must name a parent column');
  }
  return Object.freeze({
    entity: reference.entity,
    columns: Object.freeze(Object.fromEntries(pairs) as Record<string, string>),
  });
}

function normaliseOnMissing<Row>(
  definition: {
    readonly onMissing?: OnMissing<Row>;
    readonly key: readonly string[];
    readonly tenantColumn?: string | undefined;
  },
  shape: Record<string, z.ZodType>,
  mustBeColumn: (field: string, column: unknown) => void,
  fail: Fail,
): OnMissing<Row> {
  const onMissing = definition.onMissing ?? 'delete';
  if (onMissing === 'delete') return onMissing;
  if (
    typeof onMissing !== 'object' ||
    onMissing === null ||
    typeof onMissing.set !== 'object' ||
    onMissing.set === null
  ) {
    return fail('onMissing', "must be 'delete' or { set: { column: value } }");
  }
  const entries = Object.entries(onMissing.set);
  if (entries.length === 0) fail('onMissing.set', 'must set at least one column');
  for (const [column, value] of entries) {
    mustBeColumn('onMissing.set', column);
    if (definition.key.includes(column) || column === definition.tenantColumn) {
      fail('onMissing.set', `cannot change the key or tenant column "${column}"`);
    }
    const parsed = shape[column]?.safeParse(value);
    if (parsed && !parsed.success) {
      fail(
        `onMissing.set.${column}`,
        `is not a valid value for the column: ${parsed.error.issues[0]?.message ?? ''}`,
      );
    }
  }
  return Object.freeze({ set: Object.freeze({ ...onMissing.set }) });
}
