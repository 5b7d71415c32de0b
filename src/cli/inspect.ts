import type { z } from 'zod/v4';
import {
  backsKey,
  type CatalogColumn,
  describeQuery,
  describeTable,
  holdsNullStatement,
  maxAbsStatement,
  privileges,
  type Relation,
  readOnly,
  uniqueKeys,
} from '../db/pg/catalog.js';
import { type SqlType, typeClass } from '../db/pg/column-types.js';
import type { PgClient } from '../db/pg/pool.js';
import type { TenantId } from '../db/types.js';
import type { AnyEntity, TableName } from '../entity/types.js';
import { messageOf } from '../errors.js';
import { schemaFitsType, schemaShape } from './column-schema.js';

/** One thing `meter-sync check` (or `init`) found about an entity. */
export interface Finding {
  readonly entity: string;
  readonly column?: string | undefined;
  readonly level: 'error' | 'warning';
  readonly message: string;
}

/** How an entity is read on the source: the relation, and each synced column's source name. */
export function sourceOf(entity: AnyEntity, tenantId: TenantId | undefined) {
  const source = entity.source;
  if (source.kind === 'table') {
    return {
      relation: { kind: 'table', table: source.table } as Relation,
      nameOf: (column: string) => source.columns[column] ?? column,
    };
  }
  const values = entity.tenantColumn === undefined ? [] : [tenantId ?? null];
  return {
    relation: { kind: 'query', query: source.query, values } as Relation,
    nameOf: (column: string) => column,
  };
}

export const tableText = (table: TableName) =>
  table.schema === undefined ? table.name : `${table.schema}.${table.name}`;

/** The source's columns of an entity, by target column name; a finding when it cannot be read. */
export async function sourceColumns(
  client: PgClient,
  entity: AnyEntity,
  tenantId: TenantId | undefined,
): Promise<{ columns?: Map<string, CatalogColumn>; findings: Finding[] }> {
  const { relation, nameOf } = sourceOf(entity, tenantId);
  const findings: Finding[] = [];
  let described: CatalogColumn[] | undefined;
  try {
    described =
      relation.kind === 'table'
        ? await describeTable(client, relation.table)
        : await describeQuery(client, relation.query, relation.values);
  } catch (error) {
    findings.push({
      entity: entity.name,
      level: 'error',
      message: `the source query cannot be described: ${messageOf(error)}`,
    });
    return { findings };
  }
  if (described === undefined) {
    const table = relation.kind === 'table' ? tableText(relation.table) : '';
    findings.push({
      entity: entity.name,
      level: 'error',
      message: `source table ${table} does not exist, or the role cannot see it`,
    });
    return { findings };
  }
  const byName = new Map(described.map((column) => [column.name, column]));
  const columns = new Map<string, CatalogColumn>();
  for (const column of entity.columnNames as string[]) {
    const found = byName.get(nameOf(column));
    if (found) columns.set(column, found);
    else {
      const renamed = nameOf(column) !== column ? ` (read as "${nameOf(column)}")` : '';
      findings.push({
        entity: entity.name,
        column,
        level: 'error',
        message: `missing on the source${renamed}`,
      });
    }
  }
  return { columns, findings };
}

/** Compares the target table with the definition and the source's columns. */
export async function targetFindings(
  client: PgClient,
  entity: AnyEntity,
  source: Map<string, CatalogColumn> | undefined,
): Promise<{ exists: boolean; findings: Finding[] }> {
  const findings: Finding[] = [];
  const add = (level: Finding['level'], message: string, column?: string) =>
    findings.push({ entity: entity.name, column, level, message });
  const columns = await describeTable(client, entity.table);
  if (columns === undefined) {
    add(
      'error',
      `target table ${tableText(entity.table)} does not exist; meter-sync init creates it`,
    );
    return { exists: false, findings };
  }
  const byName = new Map(columns.map((column) => [column.name, column]));
  for (const name of entity.columnNames as string[]) {
    const target = byName.get(name);
    if (!target) {
      add('error', 'missing on the target table', name);
      continue;
    }
    const from = source?.get(name);
    if (!from) continue;
    const sqlType = (column: CatalogColumn) => ({
      typeName: column.typeName,
      category: column.category,
      elementTypeName: column.elementTypeName,
      formatted: column.type,
    });
    if (!comparable(sqlType(from), sqlType(target))) {
      add('error', `source type ${from.type} and target type ${target.type} do not compare`, name);
    } else if (from.type !== target.type) {
      add('warning', `source type ${from.type}, target type ${target.type}`, name);
    }
  }
  if (!backsKey(await uniqueKeys(client, entity.table), entity.key)) {
    add(
      'error',
      `the key (${entity.key.join(', ')}) is not backed by a primary key or unique constraint on the target`,
    );
  }
  return { exists: true, findings };
}

/**
 * Everything `meter-sync check` looks at for one entity: the source is readable (and only
 * readable) by the role, every column is on both sides with comparable types, the key is
 * backed on the target, and each column's schema fits its source type and its data.
 */
export async function checkEntity(
  sourceClient: PgClient,
  targetClient: PgClient,
  entity: AnyEntity,
  tenantId: TenantId | undefined,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (level: Finding['level'], message: string, column?: string) =>
    findings.push({ entity: entity.name, column, level, message });
  const { relation, nameOf } = sourceOf(entity, tenantId);

  const source = await sourceColumns(sourceClient, entity, tenantId);
  findings.push(...source.findings);
  if (relation.kind === 'table' && source.columns) {
    const held = await privileges(sourceClient, relation.table);
    if (!held.select) add('error', 'the role may not SELECT from the source table');
    const writes = (['insert', 'update', 'delete', 'truncate'] as const).filter((p) => held[p]);
    if (writes.length > 0) {
      add(
        'warning',
        `the role may ${writes.map((p) => p.toUpperCase()).join(', ')} on the source table; SELECT alone is enough`,
      );
    }
  }

  const target = await targetFindings(targetClient, entity, source.columns);
  findings.push(...target.findings);
  if (target.exists) {
    const held = await privileges(targetClient, entity.table);
    const missing = (['select', 'insert', 'update', 'delete'] as const).filter((p) => !held[p]);
    if (missing.length > 0) {
      add(
        'error',
        `the role may not ${missing.map((p) => p.toUpperCase()).join(', ')} on the target table`,
      );
    }
  }

  const shape = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  for (const [name, column] of source.columns ?? []) {
    const schema = shape[name];
    if (!schema) continue;
    const sourceName = nameOf(name);
    const fact = async (statement: { text: string; values: unknown[] }) =>
      readOnly(sourceClient, async () => (await sourceClient.query(statement)).rows[0]);
    try {
      const shapeOf = schemaShape(schema);
      const verdict = await schemaFitsType(shapeOf, column, async () => {
        const row = await fact(maxAbsStatement(relation, sourceName));
        return (row?.max as string | null) ?? null;
      });
      if (verdict) add(verdict.level, verdict.message, name);
      if (!shapeOf.nullable && column.notNull !== true) {
        const row = await fact(holdsNullStatement(relation, sourceName));
        if (row?.holds_null) {
          add('error', 'the source holds NULLs but the schema is not .nullable()', name);
        } else if (column.notNull === false) {
          add('warning', 'the source column allows NULL but the schema is not .nullable()', name);
        }
      }
    } catch (error) {
      add('error', `reading the source column failed: ${messageOf(error)}`, name);
    }
  }
  return findings;
}

/** Families whose values a cast to the target's type carries over: numbers, text, JSON, times. */
const FAMILIES: readonly (readonly string[])[] = [
  ['integer', 'numeric', 'float'],
  ['text'],
  ['json'],
  ['timestamptz', 'timestamp', 'date'],
];

/** Whether source values of one type can be compared as the target's type after a cast. */
function comparable(source: SqlType, target: SqlType): boolean {
  const a = typeClass(source);
  const b = typeClass(target);
  return a === b || FAMILIES.some((family) => family.includes(a) && family.includes(b));
}
