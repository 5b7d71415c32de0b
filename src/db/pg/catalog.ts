/**
 * Catalog reads for checking and creating an entity's tables: columns with their types and
 * NULL-ability, unique keys, the role's privileges, the types of a query's result, and a few
 * facts about the data. Identifiers are quoted; values are parameters. Every statement only
 * reads, and a user-supplied query runs inside a READ ONLY transaction.
 */
import type { TableName } from '../../entity/types.js';
import type { PgClient } from './pool.js';
import { describeTypes, quoteIdent, quoteTable, type Statement } from './sql.js';

/** A column as the catalog describes it. */
export interface CatalogColumn {
  readonly name: string;
  /** As `format_type` prints it: `bigint`, `character varying(20)`, `numeric(12,2)`. */
  readonly type: string;
  /** `pg_type.typname`: `int8`, `varchar`, `_text`. */
  readonly typeName: string;
  /** `pg_type.typcategory`: `A` for arrays. */
  readonly category: string;
  readonly elementTypeName?: string | undefined;
  /** Whether the column is declared NOT NULL; undefined when unknown (a query's result). */
  readonly notNull: boolean | undefined;
}

/** Where rows come from: a table, or a read-only query with its parameters. */
export type Relation =
  | { readonly kind: 'table'; readonly table: TableName }
  | { readonly kind: 'query'; readonly query: string; readonly values: readonly unknown[] };

/** The table's columns in order; an empty list when the table does not exist. */
export function tableColumnsStatement(table: TableName): Statement {
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

/** The column lists of the table's unique, valid, non-partial indexes (primary key included). */
export function uniqueKeysStatement(table: TableName): Statement {
  return {
    text: `SELECT i.indisprimary AS is_primary, array_agg(a.attname::text ORDER BY k.ord) AS columns
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
  AND NOT (0 = ANY (i.indkey::int2[]))
GROUP BY i.indexrelid, i.indisprimary`,
    values: [quoteTable(table)],
  };
}

/** What the current role may do with the table; all NULL when it does not exist. */
export function privilegesStatement(table: TableName): Statement {
  const has = (privilege: string, i: number) =>
    `has_table_privilege(to_regclass($1), $${i}) AS ${quoteIdent(privilege.toLowerCase())}`;
  const privileges = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'];
  return {
    text: `SELECT ${privileges.map((privilege, i) => has(privilege, i + 2)).join(', ')}`,
    values: [quoteTable(table), ...privileges],
  };
}

function fromClause(relation: Relation): string {
  return relation.kind === 'table'
    ? quoteTable(relation.table)
    : `(${relation.query}) AS ${quoteIdent('source')}`;
}

const valuesOf = (relation: Relation) => (relation.kind === 'table' ? [] : [...relation.values]);

/** The largest absolute value of a numeric column, as exact text. */
export function maxAbsStatement(relation: Relation, column: string): Statement {
  return {
    text: `SELECT max(abs(${quoteIdent(column)}))::text AS max FROM ${fromClause(relation)}`,
    values: valuesOf(relation),
  };
}

/** Whether the column holds a NULL. */
export function holdsNullStatement(relation: Relation, column: string): Statement {
  return {
    text: `SELECT EXISTS (SELECT 1 FROM ${fromClause(relation)} WHERE ${quoteIdent(column)} IS NULL) AS holds_null`,
    values: valuesOf(relation),
  };
}

/** The query with no rows: its result's column names and type OIDs, nothing read. */
export function describeQueryStatement(query: string, values: readonly unknown[]): Statement {
  return {
    text: `SELECT * FROM (${query}) AS ${quoteIdent('source')} LIMIT 0`,
    values: [...values],
  };
}

/** `CREATE TABLE` for columns typed as another database's catalog prints them. */
export function createTableSql(
  table: TableName,
  columns: readonly { readonly name: string; readonly type: string; readonly notNull: boolean }[],
  key: readonly string[],
): string {
  const lines = columns.map(
    (column) => `  ${quoteIdent(column.name)} ${column.type}${column.notNull ? ' NOT NULL' : ''}`,
  );
  lines.push(`  PRIMARY KEY (${key.map(quoteIdent).join(', ')})`);
  const schema =
    table.schema === undefined ? '' : `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.schema)};\n`;
  return `${schema}CREATE TABLE ${quoteTable(table)} (\n${lines.join(',\n')}\n);`;
}

/** Runs `work` inside a READ ONLY transaction that is always rolled back. */
export async function readOnly<T>(client: PgClient, work: () => Promise<T>): Promise<T> {
  await client.query({ text: 'BEGIN TRANSACTION READ ONLY' });
  try {
    return await work();
  } finally {
    await client.query({ text: 'ROLLBACK' });
  }
}

interface ColumnRow {
  name: string;
  type: string;
  type_name: string;
  category: string;
  element_type_name: string | null;
  not_null?: boolean;
}

const toColumn = (row: ColumnRow, notNull: boolean | undefined): CatalogColumn => ({
  name: row.name,
  type: row.type,
  typeName: row.type_name,
  category: row.category,
  elementTypeName: row.element_type_name ?? undefined,
  notNull,
});

/** The table's columns, or undefined when it does not exist. */
export async function describeTable(
  client: PgClient,
  table: TableName,
): Promise<CatalogColumn[] | undefined> {
  const { rows } = await client.query(tableColumnsStatement(table));
  if (rows.length === 0) return undefined;
  return (rows as ColumnRow[]).map((row) => toColumn(row, row.not_null === true));
}

/** The columns of a query's result, described without reading a row (READ ONLY). */
export async function describeQuery(
  client: PgClient,
  query: string,
  values: readonly unknown[],
): Promise<CatalogColumn[]> {
  return readOnly(client, async () => {
    const result = await client.query(describeQueryStatement(query, values));
    const fields = result.fields ?? [];
    const { rows } = await client.query(describeTypes(fields.map((field) => field.dataTypeID)));
    const byOid = new Map((rows as (ColumnRow & { oid: number })[]).map((row) => [row.oid, row]));
    return fields.map((field) => {
      const row = byOid.get(field.dataTypeID);
      return toColumn(
        {
          name: field.name,
          type: row?.type ?? 'unknown',
          type_name: row?.type_name ?? 'unknown',
          category: row?.category ?? 'X',
          element_type_name: row?.element_type_name ?? null,
        },
        undefined,
      );
    });
  });
}

/** The column lists of the table's unique keys. */
export async function uniqueKeys(client: PgClient, table: TableName): Promise<string[][]> {
  const { rows } = await client.query(uniqueKeysStatement(table));
  return (rows as { columns: string[] }[]).map((row) => row.columns);
}

/** Whether one of a table's unique keys (as `uniqueKeys` gives them) is exactly `key`, in any order. */
export function backsKey(keys: readonly (readonly string[])[], key: readonly string[]): boolean {
  return keys.some(
    (columns) => columns.length === key.length && key.every((column) => columns.includes(column)),
  );
}

/** The privileges the current role holds on the table. */
export async function privileges(
  client: PgClient,
  table: TableName,
): Promise<Record<'select' | 'insert' | 'update' | 'delete' | 'truncate', boolean>> {
  const { rows } = await client.query(privilegesStatement(table));
  return rows[0];
}
