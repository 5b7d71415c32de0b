/**
 * The only place SQL text is put together. Identifiers are always quoted; values are always
 * bound parameters. The statements stay within what both PostgreSQL and pg-mem accept.
 */
import type { TableName } from '../../entity/types.js';
import { textArrayParameter } from './params.js';

/** A statement and its parameters. */
export interface Statement {
  readonly text: string;
  readonly values: unknown[];
}

/** Quotes an identifier: `a"b` → `"a""b"`. */
export function quoteIdent(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

/** Quotes a possibly schema-qualified table name. */
export function quoteTable(table: TableName): string {
  return table.schema === undefined
    ? quoteIdent(table.name)
    : `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
}

const list = (columns: readonly string[]) => columns.map(quoteIdent).join(', ');

// PostgreSQL binds at most 65535 parameters per statement; stay well below.
const MAX_PARAMETERS = 30_000;

/** How many rows of `width` parameters fit in one statement. */
export function batchSize(width: number, cap: number): number {
  return Math.max(1, Math.min(cap, Math.floor(MAX_PARAMETERS / Math.max(1, width))));
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size));
  return result;
}

/** Builds `$n` placeholders while collecting their values. */
class Parameters {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** An optional tenant filter: `column = $n`. */
export interface TenantFilter {
  readonly column: string;
  readonly value: unknown;
}

/** `SELECT <columns> FROM <table> [WHERE <tenant> = $1]`. */
export function selectStatement(
  table: TableName,
  columns: readonly { readonly name: string; readonly as?: string }[],
  tenant?: TenantFilter,
): Statement {
  const params = new Parameters();
  const select = columns
    .map(({ name, as }) =>
      as === undefined || as === name
        ? quoteIdent(name)
        : `${quoteIdent(name)} AS ${quoteIdent(as)}`,
    )
    .join(', ');
  const where = tenant ? ` WHERE ${quoteIdent(tenant.column)} = ${params.add(tenant.value)}` : '';
  return { text: `SELECT ${select} FROM ${quoteTable(table)}${where}`, values: params.values };
}

/**
 * Selects exactly `columns` from a user-supplied read-only query; `$1` in the query is the tenant.
 * Wrapping it keeps extra columns out and makes a missing column an error here, not later.
 */
export function selectFromQuery(
  query: string,
  columns: readonly string[],
  tenantValue?: unknown,
): Statement {
  return {
    text: `SELECT ${list(columns)} FROM (${query}) AS ${quoteIdent('source')}`,
    values: tenantValue === undefined ? [] : [tenantValue],
  };
}

function keyPredicate(
  params: Parameters,
  keyColumns: readonly string[],
  keys: readonly unknown[][],
): string {
  const alternatives = keys.map(
    (key) =>
      `(${keyColumns.map((column, i) => `${quoteIdent(column)} = ${params.add(key[i])}`).join(' AND ')})`,
  );
  return alternatives.length === 1 ? (alternatives[0] as string) : `(${alternatives.join(' OR ')})`;
}

const tenantPredicate = (params: Parameters, tenant: TenantFilter | undefined) =>
  tenant ? ` AND ${quoteIdent(tenant.column)} = ${params.add(tenant.value)}` : '';

/**
 * `INSERT … ON CONFLICT (key) DO UPDATE`, in batches. With a tenant filter the update applies
 * only to a conflicting row of that tenant, so another tenant's row is never taken over.
 */
export function upsertStatements(
  table: TableName,
  columns: readonly string[],
  keyColumns: readonly string[],
  rows: readonly unknown[][],
  tenant?: TenantFilter,
): Statement[] {
  const updatable = columns.filter((column) => !keyColumns.includes(column));
  const alias = quoteIdent('target');
  const onConflict =
    updatable.length === 0
      ? 'DO NOTHING'
      : `DO UPDATE SET ${updatable.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}${
          tenant
            ? ` WHERE ${alias}.${quoteIdent(tenant.column)} = EXCLUDED.${quoteIdent(tenant.column)}`
            : ''
        }`;
  return chunks(rows, batchSize(columns.length, 1000)).map((batch) => {
    const params = new Parameters();
    const values = batch
      .map((row) => `(${row.map((value) => params.add(value)).join(', ')})`)
      .join(', ');
    return {
      text: `INSERT INTO ${quoteTable(table)} AS ${alias} (${list(columns)}) VALUES ${values} ON CONFLICT (${list(keyColumns)}) ${onConflict}`,
      values: params.values,
    };
  });
}

/** `DELETE … WHERE key IN keys [AND tenant = $n]`, in batches. */
export function deleteStatements(
  table: TableName,
  keyColumns: readonly string[],
  keys: readonly unknown[][],
  tenant?: TenantFilter,
): Statement[] {
  return chunks(keys, batchSize(keyColumns.length, 500)).map((batch) => {
    const params = new Parameters();
    const where = keyPredicate(params, keyColumns, batch) + tenantPredicate(params, tenant);
    return { text: `DELETE FROM ${quoteTable(table)} WHERE ${where}`, values: params.values };
  });
}

/** `UPDATE … SET columns WHERE key IN keys [AND tenant = $n]`, in batches. */
export function updateStatements(
  table: TableName,
  set: readonly (readonly [column: string, value: unknown])[],
  keyColumns: readonly string[],
  keys: readonly unknown[][],
  tenant?: TenantFilter,
): Statement[] {
  return chunks(keys, batchSize(keyColumns.length, 500)).map((batch) => {
    const params = new Parameters();
    const assignments = set
      .map(([column, value]) => `${quoteIdent(column)} = ${params.add(value)}`)
      .join(', ');
    const where = keyPredicate(params, keyColumns, batch) + tenantPredicate(params, tenant);
    return {
      text: `UPDATE ${quoteTable(table)} SET ${assignments} WHERE ${where}`,
      values: params.values,
    };
  });
}

/** Key columns with their SQL types, for statements that take keys as one array per column. */
export interface TypedKey {
  readonly columns: readonly string[];
  /** The types as `format_type` prints them, e.g. `bigint`, `character varying(20)`. */
  readonly types: readonly string[];
}

/** `unnest($1::t1[], $2::t2[]) AS k(c1, c2)` and the join condition to `alias`. */
function unnestKeys(params: Parameters, key: TypedKey, keys: readonly unknown[][], alias: string) {
  const arrays = key.columns.map(
    (_, i) => `${params.add(textArrayParameter(keys.map((k) => k[i])))}::${key.types[i]}[]`,
  );
  const from = `unnest(${arrays.join(', ')}) AS "k"(${list(key.columns)})`;
  const join = key.columns
    .map((column) => `${alias}.${quoteIdent(column)} = "k".${quoteIdent(column)}`)
    .join(' AND ');
  return { from, join };
}

const qualifiedTenant = (params: Parameters, tenant: TenantFilter | undefined, alias: string) =>
  tenant ? ` AND ${alias}.${quoteIdent(tenant.column)} = ${params.add(tenant.value)}` : '';

/** A condition on the rows of `"t"` that takes one bound value, given as its placeholder. */
export interface BoundCondition {
  readonly sql: (placeholder: string) => string;
  readonly value: unknown;
}

const bound = (params: Parameters, condition: BoundCondition | undefined) =>
  condition ? ` AND ${condition.sql(params.add(condition.value))}` : '';

// Keys travel as one array per column: one statement per 10 000 keys whatever the key width.
const ARRAY_BATCH = 10_000;

/** PostgreSQL: `DELETE … USING unnest(keys)`, in batches; only rows that meet `condition`. */
export function deleteByKeyArrays(
  table: TableName,
  key: TypedKey,
  keys: readonly unknown[][],
  tenant?: TenantFilter,
  condition?: BoundCondition,
): Statement[] {
  return chunks(keys, ARRAY_BATCH).map((batch) => {
    const params = new Parameters();
    const { from, join } = unnestKeys(params, key, batch, '"t"');
    return {
      text: `DELETE FROM ${quoteTable(table)} AS "t" USING ${from} WHERE ${join}${qualifiedTenant(params, tenant, '"t"')}${bound(params, condition)}`,
      values: params.values,
    };
  });
}

/**
 * PostgreSQL: `UPDATE … FROM unnest(keys)` that skips rows already holding the values; only
 * rows that meet `condition`.
 */
export function updateByKeyArrays(
  table: TableName,
  set: readonly (readonly [column: string, value: unknown])[],
  key: TypedKey,
  keys: readonly unknown[][],
  tenant?: TenantFilter,
  condition?: BoundCondition,
): Statement[] {
  return chunks(keys, ARRAY_BATCH).map((batch) => {
    const params = new Parameters();
    const values = set.map(([column, value]) => [column, params.add(value)] as const);
    const assignments = values
      .map(([column, param]) => `${quoteIdent(column)} = ${param}`)
      .join(', ');
    const differs = values
      .map(([column, param]) => `"t".${quoteIdent(column)} IS DISTINCT FROM ${param}`)
      .join(' OR ');
    const { from, join } = unnestKeys(params, key, batch, '"t"');
    return {
      text: `UPDATE ${quoteTable(table)} AS "t" SET ${assignments} FROM ${from} WHERE ${join} AND (${differs})${qualifiedTenant(params, tenant, '"t"')}${bound(params, condition)}`,
      values: params.values,
    };
  });
}

/** PostgreSQL: of these keys, those stored under another tenant, in batches. */
export function keysOutsideTenantByArrays(
  table: TableName,
  key: TypedKey,
  keys: readonly unknown[][],
  tenant: TenantFilter,
): Statement[] {
  return chunks(keys, ARRAY_BATCH).map((batch) => {
    const params = new Parameters();
    const { from, join } = unnestKeys(params, key, batch, '"t"');
    const column = `"t".${quoteIdent(tenant.column)}`;
    const keyList = key.columns.map((c) => `"t".${quoteIdent(c)}`).join(', ');
    return {
      text: `SELECT ${keyList} FROM ${quoteTable(table)} AS "t" JOIN ${from} ON ${join} WHERE ${column} IS DISTINCT FROM ${params.add(tenant.value)}`,
      values: params.values,
    };
  });
}

/** Of these keys, those stored under another tenant (or none): `tenant <> $n OR tenant IS NULL`. */
export function keysOutsideTenantStatements(
  table: TableName,
  keyColumns: readonly string[],
  keys: readonly unknown[][],
  tenant: TenantFilter,
): Statement[] {
  return chunks(keys, batchSize(keyColumns.length, 500)).map((batch) => {
    const params = new Parameters();
    const column = quoteIdent(tenant.column);
    const where = `${keyPredicate(params, keyColumns, batch)} AND (${column} <> ${params.add(tenant.value)} OR ${column} IS NULL)`;
    return {
      text: `SELECT ${list(keyColumns)} FROM ${quoteTable(table)} WHERE ${where}`,
      values: params.values,
    };
  });
}

/** The columns of a table through the catalog, resolving the name the way a query would. */
export function describeFromCatalog(table: TableName): Statement {
  return {
    text: `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, t.typname AS type_name,
  t.typcategory AS category, e.typname AS element_type_name, a.attnotnull AS not_null
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    values: [quoteTable(table)],
  };
}

/** Names and describes result types by OID, as a query's result fields report them. */
export function describeTypes(oids: readonly number[]): Statement {
  return {
    text: `SELECT t.oid::int AS oid, format_type(t.oid, NULL) AS type, t.typname AS type_name, t.typcategory AS category,
  e.typname AS element_type_name
FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
WHERE t.oid = ANY($1::oid[])`,
    values: [oids],
  };
}

/** The columns of a table through information_schema, for engines without a full catalog. */
export function describeFromInformationSchema(table: TableName): Statement {
  return {
    text: 'SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2',
    values: [table.schema ?? 'public', table.name],
  };
}

/** Sets a setting for the current transaction only; the value is bound, not spliced. */
export function setLocal(setting: string, value: string | number): Statement {
  return { text: 'SELECT set_config($1, $2, true)', values: [setting, String(value)] };
}

/**
 * `SET LOCAL setting = n` for an integer setting: a utility statement, which (unlike a SELECT of
 * set_config) does not take the snapshot of a REPEATABLE READ transaction.
 */
export function setLocalUtility(
  setting: 'statement_timeout' | 'lock_timeout',
  value: number,
): string {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`${setting} must be a non-negative integer of milliseconds, got ${value}`);
  return `SET LOCAL ${setting} = ${value}`;
}

/** The sync lock's advisory-lock key: 'msyn' as an int4, and 0. Visible in pg_locks. */
export const RUN_LOCK_KEY = [1836284270, 0] as const;
export const RUN_LOCK = {
  try: { text: 'SELECT pg_try_advisory_lock($1, $2) AS locked', values: [...RUN_LOCK_KEY] },
  wait: { text: 'SELECT pg_advisory_lock($1, $2)', values: [...RUN_LOCK_KEY] },
  release: { text: 'SELECT pg_advisory_unlock($1, $2)', values: [...RUN_LOCK_KEY] },
} as const satisfies Record<string, Statement>;

/** Reads the server version; fails on engines that are not PostgreSQL. */
export const SERVER_VERSION = "SELECT current_setting('server_version_num') AS version";
export const BEGIN = 'BEGIN';
export const BEGIN_READ_ONLY = 'BEGIN READ ONLY';
export const BEGIN_SNAPSHOT = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';
export const COMMIT = 'COMMIT';
export const ROLLBACK = 'ROLLBACK';
export const savepoint = (name: string) => `SAVEPOINT ${quoteIdent(name)}`;
export const releaseSavepoint = (name: string) => `RELEASE SAVEPOINT ${quoteIdent(name)}`;
export const rollbackToSavepoint = (name: string) => `ROLLBACK TO SAVEPOINT ${quoteIdent(name)}`;

/** A column with the type a value is cast to, as `format_type` prints it. */
export interface TypedColumn {
  readonly name: string;
  readonly type: string;
}

/** `SELECT CAST(v.c0 AS t0), … FROM unnest($1::text[], …) AS v(c0, …)`: text rows as typed rows. */
function typedRows(
  params: Parameters,
  columns: readonly TypedColumn[],
  rows: readonly unknown[][],
) {
  const aliases = columns.map((_, i) => quoteIdent(`c${i}`));
  const arrays = columns.map(
    (_, i) => `${params.add(textArrayParameter(rows.map((row) => row[i] ?? null)))}::text[]`,
  );
  const casts = columns.map((column, i) => `CAST("v".${aliases[i]} AS ${column.type})`);
  return `SELECT ${casts.join(', ')} FROM unnest(${arrays.join(', ')}) AS "v"(${aliases.join(', ')})`;
}

/** A value's text for comparing by content: its text output, compared byte by byte. */
const content = (alias: string, column: string) =>
  `(${alias}.${quoteIdent(column)})::text COLLATE "C"`;

/**
 * PostgreSQL: upserts text rows, cast to the columns' types, in batches. An existing row is
 * updated only where a value differs by content (never by the type's looser equality), and
 * only when it belongs to the row's tenant. Returns whether each written row was inserted, and
 * its key as text.
 */
export function writeTextRows(
  table: TableName,
  columns: readonly TypedColumn[],
  keyColumns: readonly string[],
  rows: readonly (readonly unknown[])[],
  tenantColumn: string | undefined,
): Statement[] {
  return chunks(rows as unknown[][], ARRAY_BATCH).map((batch) => {
    const params = new Parameters();
    const text = upsertFrom(
      table,
      columns,
      keyColumns,
      tenantColumn,
      typedRows(params, columns, batch),
    );
    return { text, values: params.values };
  });
}

/** The same upsert as {@link writeTextRows}, from the rows of a staging table. */
export function writeFromStage(
  table: TableName,
  stage: string,
  columns: readonly TypedColumn[],
  keyColumns: readonly string[],
  tenantColumn: string | undefined,
): Statement {
  const rows = `SELECT ${list(columns.map((c) => c.name))} FROM ${quoteIdent(stage)}`;
  return { text: upsertFrom(table, columns, keyColumns, tenantColumn, rows), values: [] };
}

/** A temporary table with the target table's types for these columns, dropped at commit. */
export function createStage(table: TableName, stage: string, columns: readonly string[]): string {
  return `CREATE TEMP TABLE ${quoteIdent(stage)} ON COMMIT DROP AS SELECT ${list(columns)} FROM ${quoteTable(table)} WITH NO DATA`;
}

/** `COPY stage (columns) FROM STDIN`. */
export function copyIntoStage(stage: string, columns: readonly string[]): string {
  return `COPY ${quoteIdent(stage)} (${list(columns)}) FROM STDIN`;
}

function upsertFrom(
  table: TableName,
  columns: readonly TypedColumn[],
  keyColumns: readonly string[],
  tenantColumn: string | undefined,
  rows: string,
): string {
  const names = columns.map((column) => column.name);
  // Every column, the key's too: a key the unique index matches may differ in content (case in
  // citext, a numeric's scale), and the target then takes the source's.
  const set = names.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ');
  const differs = `ROW(${names.map((c) => content('"t"', c)).join(', ')}) IS DISTINCT FROM ROW(${names
    .map((c) => content('EXCLUDED', c))
    .join(', ')})`;
  const tenant =
    tenantColumn === undefined
      ? ''
      : ` AND "t".${quoteIdent(tenantColumn)} = EXCLUDED.${quoteIdent(tenantColumn)}`;
  const conflict = `DO UPDATE SET ${set} WHERE ${differs}${tenant}`;
  const returning = [
    '(xmax = 0) AS inserted',
    ...keyColumns.map((c, i) => `("t".${quoteIdent(c)})::text AS ${quoteIdent(`k${i}`)}`),
  ];
  return `INSERT INTO ${quoteTable(table)} AS "t" (${list(names)}) ${rows}
ON CONFLICT (${list(keyColumns)}) ${conflict} RETURNING ${returning.join(', ')}`;
}

/**
 * PostgreSQL: rows whose `columns` hold one of `keys` (matched by the columns' own equality, as
 * a unique index matches), with `outputs` as text; with `only`, those of them it holds for.
 */
export function selectByKeyArrays(
  table: TableName,
  columns: readonly TypedColumn[],
  keys: readonly (readonly unknown[])[],
  outputs: readonly string[],
  only?: string,
): Statement[] {
  return chunks(keys as unknown[][], ARRAY_BATCH).map((batch) => {
    const params = new Parameters();
    const match = `(${columns.map((c) => `"t".${quoteIdent(c.name)}`).join(', ')}) IN (${typedRows(params, columns, batch)})`;
    const where = only === undefined ? match : `${match} AND (${only})`;
    return {
      // Named c0, c1, …: rows read as objects keep every output, in order.
      text: `SELECT ${outputs.map((output, i) => `${output} AS ${quoteIdent(`c${i}`)}`).join(', ')} FROM ${quoteTable(table)} AS "t" WHERE ${where}`,
      values: params.values,
    };
  });
}
