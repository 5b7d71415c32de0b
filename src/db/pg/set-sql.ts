/**
 * Statement text of the set-based path (PostgreSQL on both sides). Values reach these
 * statements through transaction-local settings (`set_config(…, true)` with bound parameters,
 * read back with `current_setting`), because `COPY` and `CREATE TABLE AS` take no parameters.
 * Identifiers are quoted; no value is ever spliced into the text.
 */
import type { AnyEntity, TableName } from '../../entity/types.js';
import {
  columnOf,
  combinedHash,
  type SqlType,
  type TypeClass,
  transferText,
} from './column-types.js';
import { quoteIdent, quoteTable, type Statement } from './sql.js';

/** The settings the statements read. All are transaction-local. */
export const SETTING = {
  tenant: 'meter_sync.tenant',
  bucketMask: 'meter_sync.bucket_mask',
  buckets: 'meter_sync.buckets',
  key: (index: number) => `meter_sync.key_${index}`,
} as const;

/** Temporary tables on the target, dropped at commit. */
export const TEMP = {
  stage: 'meter_sync_stage',
  sourceHash: 'meter_sync_source_hash',
  changed: 'meter_sync_changed',
} as const;

/** `SELECT set_config(name, value, true), …` with every name and value bound. */
export function setSettings(settings: Readonly<Record<string, string>>): Statement {
  const entries = Object.entries(settings);
  const calls = entries.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`);
  return { text: `SELECT ${calls.join(', ')}`, values: entries.flat() };
}

// A scalar subquery is evaluated once per statement; a bare current_setting() call in a filter
// or grouping key would be looked up and cast again for every row.
const setting = (name: string, type: string) =>
  `(SELECT CAST(current_setting(${quoteLiteral(name)}) AS ${type}))`;

/** Quotes a constant string of this module (a setting name), never a value. */
function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Everything the set-based statements need to know about one entity. */
export interface SetShape {
  readonly entity: AnyEntity;
  /** The class each column is compared in. */
  readonly classes: ReadonlyMap<string, TypeClass>;
  readonly sourceTypes: ReadonlyMap<string, SqlType>;
  readonly targetTypes: ReadonlyMap<string, SqlType>;
  /** Whether both servers have the `bit_xor` aggregate (PostgreSQL 14+), cheaper than a numeric sum. */
  readonly xorAggregate: boolean;
  /** Character limits of the target's columns (`character varying(n)`, `character(n)`). */
  readonly limits: ReadonlyMap<string, number>;
}

const SOURCE = 'source';
const TARGET = 't';

function classOf(shape: SetShape, column: string): TypeClass {
  return shape.classes.get(column) ?? 'text';
}

function typeOf(types: ReadonlyMap<string, SqlType>, column: string): string {
  return types.get(column)?.formatted ?? 'text';
}

/** The key's bucket: its hash, masked to the bucket count. */
function bucketExpression(shape: SetShape, alias: string): string {
  const key = shape.entity.key.map((column) => ({
    value: columnOf(alias, column),
    cls: classOf(shape, column),
  }));
  return `((${combinedHash(key, 0)}) & ${setting(SETTING.bucketMask, 'int8')})`;
}

/** Keeps rows whose key has no NULL: such rows are counted and reported apart. */
const notNullKey = (shape: SetShape, alias: string) =>
  shape.entity.key.map((column) => `${columnOf(alias, column)} IS NOT NULL`).join(' AND ');

/** Keeps rows whose bucket is in the listed buckets. */
// IN (SELECT unnest(…)) becomes a hashed semi-join; = ANY(non-constant array) would scan the
// whole list for every row.
const inListedBuckets = (shape: SetShape, alias: string) =>
  `${bucketExpression(shape, alias)} IN (SELECT unnest(${setting(SETTING.buckets, 'int8[]')}))`;

/** A 64-bit hash of the row's synced columns. */
function rowHashExpression(shape: SetShape, alias: string): string {
  const values = shape.entity.columnNames.map((column: string) => ({
    value: columnOf(alias, column),
    cls: classOf(shape, column),
  }));
  return `(${combinedHash(values, 100)})`;
}

/**
 * The source rows of the entity in scope, with target column names, as a FROM item. A
 * `source.query` gets the tenant where it says `$1`.
 */
export function sourceRelation(shape: SetShape): string {
  const { entity } = shape;
  const tenantType =
    entity.tenantColumn === undefined ? 'text' : typeOf(shape.sourceTypes, entity.tenantColumn);
  if (entity.source.kind === 'query') {
    return `(${replaceTenantParameter(entity.source.query, setting(SETTING.tenant, tenantType))}) AS ${quoteIdent(SOURCE)}`;
  }
  const { table, columns: renamed } = entity.source;
  const remote = (column: string) => renamed[column] ?? column;
  const select = entity.columnNames
    .map((column: string) => `${quoteIdent(remote(column))} AS ${quoteIdent(column)}`)
    .join(', ');
  const where =
    entity.tenantColumn === undefined
      ? ''
      : ` WHERE ${quoteIdent(remote(entity.tenantColumn))} = ${setting(SETTING.tenant, tenantType)}`;
  return `(SELECT ${select} FROM ${quoteTable(table)}${where}) AS ${quoteIdent(SOURCE)}`;
}

/**
 * Replaces the parameter `$1` of a read-only query, outside string literals, quoted identifiers,
 * comments and dollar-quoted strings, with an expression.
 */
export function replaceTenantParameter(query: string, replacement: string): string {
  let out = '';
  let i = 0;
  while (i < query.length) {
    const rest = query.slice(i);
    const skip =
      /^'(?:[^']|'')*'/.exec(rest) ??
      /^"(?:[^"]|"")*"/.exec(rest) ??
      /^--[^\n]*/.exec(rest) ??
      /^\/\*[\s\S]*?\*\//.exec(rest) ??
      /^(\$[A-Za-z_]*\$)[\s\S]*?\1/.exec(rest);
    if (skip) {
      out += skip[0];
      i += skip[0].length;
    } else if (/^\$1(?!\d)/.test(rest)) {
      out += `(${replacement})`;
      i += 2;
    } else {
      out += query[i];
      i++;
    }
  }
  return out;
}

function targetScope(shape: SetShape, alias: string): string {
  const tenant = shape.entity.tenantColumn;
  if (tenant === undefined) return 'TRUE';
  return `${columnOf(alias, tenant)} = ${setting(SETTING.tenant, typeOf(shape.targetTypes, tenant))}`;
}

/** The key's hash (without the mask) and the hash of the other synced columns. */
function keyAndRestHashes(shape: SetShape, alias: string): string {
  const { entity } = shape;
  const value = (column: string) => ({
    value: columnOf(alias, column),
    cls: classOf(shape, column),
  });
  const rest = entity.columnNames
    .filter((column: string) => !entity.key.includes(column))
    .map(value);
  const nullKey = entity.key.map((column) => `${columnOf(alias, column)} IS NULL`).join(' OR ');
  return `(${combinedHash(entity.key.map(value), 0)}) AS key_hash, ${rest.length === 0 ? '0::int8' : `(${combinedHash(rest, 100)})`} AS rest_hash, (${nullKey}) AS null_key`;
}

/**
 * One fingerprint per bucket, 8 bytes each, in bucket order, as one bytea (read in binary): the
 * bucket's row hashes and row count folded into 64 bits, 0 for an empty bucket. Dense bytes let
 * a run compare tens of thousands of buckets for half a byte per row. `hashed` yields key_hash
 * and rest_hash per row; OFFSET 0 keeps it a subquery so the key's hash is computed once.
 * Column hashes combine by XOR, so one column changed alike in two rows of a bucket would
 * change its XOR twice by the same bits and cancel out: each row's hash is mixed first.
 */
function bucketFingerprints(shape: SetShape, hashed: string): string {
  const kept = 'FILTER (WHERE NOT null_key)';
  const fold = shape.xorAggregate
    ? `(bit_xor(h) ${kept} # hashint8extended(count(*) ${kept}, 7))`
    : `((mod(mod(sum(h) ${kept} + count(*) ${kept} * 11400714819323198485, 18446744073709551616) + 18446744073709551616, 18446744073709551616) - 9223372036854775808)::int8)`;
  const mask = setting(SETTING.bucketMask, 'int8');
  // Rows with a NULL key cannot be matched by key: they are counted apart (the source's data is
  // at fault) and left out of the fingerprints, so they do not make a bucket differ forever.
  return `SELECT string_agg(int8send(COALESCE(a.fingerprint, 0)), ''::bytea ORDER BY g.bucket) AS fingerprints,
  COALESCE(sum(a.rows), 0)::int8 AS rows, COALESCE(sum(a.null_keys), 0)::int8 AS null_keys
FROM generate_series(0, ${mask}) AS g(bucket)
LEFT JOIN (
  SELECT bucket, count(*) ${kept} AS rows, count(*) FILTER (WHERE null_key) AS null_keys,
    CASE WHEN count(*) ${kept} = 0 THEN 0 ELSE ${fold} END AS fingerprint
  FROM (SELECT key_hash & ${mask} AS bucket, hashint8extended(key_hash # rest_hash, 3) AS h, null_key FROM (${hashed} OFFSET 0) AS hashed) AS x
  GROUP BY bucket
) AS a ON a.bucket = g.bucket`;
}

/** Bucket fingerprints of the source rows in scope. */
export function sourceBucketFingerprints(shape: SetShape): string {
  return bucketFingerprints(
    shape,
    `SELECT ${keyAndRestHashes(shape, SOURCE)} FROM ${sourceRelation(shape)}`,
  );
}

/** Bucket fingerprints of the target rows in scope. */
export function targetBucketFingerprints(shape: SetShape): string {
  return bucketFingerprints(
    shape,
    `SELECT ${keyAndRestHashes(shape, TARGET)} FROM ${quoteTable(shape.entity.table)} AS ${quoteIdent(TARGET)} WHERE ${targetScope(shape, TARGET)}`,
  );
}

/** `COPY` of the source's keys and row hashes, for all buckets or those listed in the setting. */
export function copySourceKeyHashes(shape: SetShape, someBuckets: boolean): string {
  const keys = shape.entity.key.map((column) =>
    transferText(columnOf(SOURCE, column), classOf(shape, column)),
  );
  const where = [
    notNullKey(shape, SOURCE),
    ...(someBuckets ? [inListedBuckets(shape, SOURCE)] : []),
  ].join(' AND ');
  return `COPY (SELECT ${keys.join(', ')}, ${rowHashExpression(shape, SOURCE)} FROM ${sourceRelation(shape)} WHERE ${where}) TO STDOUT`;
}

/**
 * `COPY` of (key, row hash) in key order, from the source or the target rows in scope, for all
 * buckets or the listed ones. For keys whose order both servers agree on (integers).
 */
export function copyOrderedKeyHashes(
  shape: SetShape,
  side: 'source' | 'target',
  someBuckets: boolean,
): string {
  const alias = side === 'source' ? SOURCE : TARGET;
  const keys = shape.entity.key.map((column) => columnOf(alias, column)).join(', ');
  const from =
    side === 'source'
      ? `${sourceRelation(shape)} WHERE ${notNullKey(shape, SOURCE)}${someBuckets ? ` AND ${inListedBuckets(shape, SOURCE)}` : ''}`
      : `${quoteTable(shape.entity.table)} AS ${quoteIdent(TARGET)} WHERE ${targetScope(shape, TARGET)}${
          someBuckets ? ` AND ${inListedBuckets(shape, TARGET)}` : ''
        }`;
  return `COPY (SELECT ${keys}, ${rowHashExpression(shape, alias)} FROM ${from} ORDER BY ${keys}) TO STDOUT`;
}

/** An empty temporary table with the target's key columns and a hash column. */
export function createSourceHash(shape: SetShape): string {
  const keys = shape.entity.key.map((column) => quoteIdent(column)).join(', ');
  return `CREATE TEMP TABLE ${quoteIdent(TEMP.sourceHash)} ON COMMIT DROP AS
SELECT ${keys}, 0::int8 AS "meter_sync_hash" FROM ${quoteTable(shape.entity.table)} WITH NO DATA`;
}

export const analyzeSourceHash = `ANALYZE ${quoteIdent(TEMP.sourceHash)}`;

export function copyIntoSourceHash(shape: SetShape): string {
  const columns = [...shape.entity.key.map(quoteIdent), '"meter_sync_hash"'];
  return `COPY ${quoteIdent(TEMP.sourceHash)} (${columns.join(', ')}) FROM STDIN`;
}

const keyJoin = (shape: SetShape, left: string, right: string) =>
  shape.entity.key
    .map((column) => `${columnOf(left, column)} = ${columnOf(right, column)}`)
    .join(' AND ');

/**
 * One full join of the source's (key, hash) rows with the target rows in scope (in the compared
 * buckets): every key whose row is new (`is_new`), differs, or is missing on the source
 * (`is_missing`).
 */
export function createChanged(shape: SetShape, someBuckets: boolean): string {
  const { entity } = shape;
  const keys = entity.key.map(
    (column) =>
      `COALESCE(${columnOf('s', column)}, ${columnOf(TARGET, column)}) AS ${quoteIdent(column)}`,
  );
  const first = quoteIdent(entity.key[0] as string);
  const buckets = someBuckets ? ` AND ${inListedBuckets(shape, TARGET)}` : '';
  const targetRows = `SELECT ${entity.key.map((column) => columnOf(TARGET, column)).join(', ')}, ${rowHashExpression(shape, TARGET)} AS "meter_sync_hash"
  FROM ${quoteTable(entity.table)} AS ${quoteIdent(TARGET)} WHERE ${targetScope(shape, TARGET)}${buckets}`;
  return `CREATE TEMP TABLE ${quoteIdent(TEMP.changed)} ON COMMIT DROP AS
SELECT ${keys.join(', ')}, (${TARGET}.${first} IS NULL) AS is_new, (s.${first} IS NULL) AS is_missing
FROM ${quoteIdent(TEMP.sourceHash)} AS s
FULL JOIN (${targetRows}) AS ${quoteIdent(TARGET)} ON ${keyJoin(shape, 's', TARGET)}
WHERE s."meter_sync_hash" IS DISTINCT FROM ${TARGET}."meter_sync_hash"`;
}

/** The changed keys as one array literal per key column, in the source's text forms. */
export function changedKeyArrays(shape: SetShape): string {
  const arrays = shape.entity.key.map(
    (column, index) =>
      `array_agg(${transferText(columnOf('c', column), classOf(shape, column))})::text AS k${index}`,
  );
  return `SELECT count(*)::int AS changed, ${arrays.join(', ')} FROM ${quoteIdent(TEMP.changed)} AS c WHERE NOT c.is_missing`;
}

/** Keys of target rows (in the compared buckets) that the source does not have. */
export function missingOnSource(shape: SetShape): string {
  const keys = shape.entity.key.map(
    (column) => `${columnOf('c', column)}::text AS ${quoteIdent(column)}`,
  );
  return `SELECT ${keys.join(', ')} FROM ${quoteIdent(TEMP.changed)} AS c WHERE c.is_missing`;
}

/** `COPY` of whole source rows, all in scope or those whose keys are listed in the settings. */
export function copySourceRows(shape: SetShape, byKey: boolean): string {
  const { entity } = shape;
  const values = entity.columnNames.map((column: string) =>
    transferText(columnOf(SOURCE, column), classOf(shape, column)),
  );
  let where = '';
  if (byKey) {
    const arrays = entity.key.map((column, index) =>
      setting(SETTING.key(index), `${typeOf(shape.sourceTypes, column)}[]`),
    );
    const keys = entity.key.map((column) => columnOf(SOURCE, column));
    where = ` WHERE (${keys.join(', ')}) IN (SELECT * FROM unnest(${arrays.join(', ')}))`;
  }
  return `COPY (SELECT ${values.join(', ')} FROM ${sourceRelation(shape)}${where}) TO STDOUT`;
}

/** An empty temporary table with the target's types for the synced columns. */
export function createStage(shape: SetShape): string {
  // Limited text columns are staged as text so that an overlong value is found and named by
  // the checks below instead of stopping the COPY with a message that names neither row nor key.
  const columns = shape.entity.columnNames
    .map((column: string) =>
      shape.limits.has(column)
        ? `${quoteIdent(column)}::text AS ${quoteIdent(column)}`
        : quoteIdent(column),
    )
    .join(', ');
  return `CREATE TEMP TABLE ${quoteIdent(TEMP.stage)} ON COMMIT DROP AS SELECT ${columns} FROM ${quoteTable(shape.entity.table)} WITH NO DATA`;
}

/** `COPY` into the stage, or straight into the target table. */
export function copyInto(shape: SetShape, into: 'stage' | 'target'): string {
  const table = into === 'stage' ? quoteIdent(TEMP.stage) : quoteTable(shape.entity.table);
  const columns = shape.entity.columnNames.map((column: string) => quoteIdent(column)).join(', ');
  return `COPY ${table} (${columns}) FROM STDIN`;
}

/**
 * Staged (or just copied) rows that break what the definition promises: NULL in a non-nullable
 * column, a value longer than its target column allows, or (tenant-scoped) another tenant.
 * `first` selects one such row, `delete` removes them all from the stage; either way each row
 * comes with its key, its tenant and a flag or length per check.
 */
export function invalidRows(
  shape: SetShape,
  table: 'stage' | 'target',
  required: readonly string[],
  mode: 'first' | 'delete',
): string | undefined {
  const { entity } = shape;
  const value = (column: string) => columnOf('s', column);
  const checks: { flag: string; condition: string }[] = required.map((column) => ({
    flag: `(${value(column)} IS NULL) AS ${quoteIdent(`null:${column}`)}`,
    condition: `${value(column)} IS NULL`,
  }));
  for (const [column, limit] of shape.limits) {
    // PostgreSQL accepts excess that is only spaces, and drops it.
    const condition = `length(rtrim(${value(column)}, ' ')) > ${Number(limit)}`;
    checks.push({
      flag: `(CASE WHEN ${condition} THEN length(${value(column)}) END) AS ${quoteIdent(`length:${column}`)}`,
      condition,
    });
  }
  if (entity.tenantColumn !== undefined) {
    const condition = `${value(entity.tenantColumn)} IS DISTINCT FROM ${setting(SETTING.tenant, typeOf(shape.targetTypes, entity.tenantColumn))}`;
    checks.push({ flag: `(${condition}) AS "meter_sync_foreign_tenant"`, condition });
  }
  if (checks.length === 0) return undefined;
  const columns = [
    ...entity.key.map((column) => `${value(column)}::text AS ${quoteIdent(column)}`),
    ...(entity.tenantColumn === undefined
      ? []
      : [`${value(entity.tenantColumn)}::text AS "meter_sync_tenant"`]),
    ...checks.map((check) => check.flag),
  ];
  const where = checks.map((check) => check.condition).join(' OR ');
  if (mode === 'delete')
    return `DELETE FROM ${quoteIdent(TEMP.stage)} AS s WHERE ${where} RETURNING ${columns.join(', ')}`;
  const from =
    table === 'stage' ? `${quoteIdent(TEMP.stage)} AS s` : `${quoteTable(entity.table)} AS s`;
  return `SELECT ${columns.join(', ')} FROM ${from} WHERE ${where} LIMIT 1`;
}

/** Removes every staged row of a key the stage holds more than once; returns their keys. */
export function deleteRepeatedKeys(shape: SetShape): string {
  const keys = shape.entity.key.map((column) => columnOf('s', column));
  const group = shape.entity.key.map(quoteIdent).join(', ');
  const returned = shape.entity.key.map(
    (column) => `${columnOf('s', column)}::text AS ${quoteIdent(column)}`,
  );
  return `DELETE FROM ${quoteIdent(TEMP.stage)} AS s WHERE (${keys.join(', ')}) IN (SELECT ${group} FROM ${quoteIdent(TEMP.stage)} GROUP BY ${group} HAVING count(*) > 1) RETURNING ${returned.join(', ')}`;
}

/** Keys the stage holds twice, for the error message; one row. */
export function duplicateStageKey(shape: SetShape): string {
  const keys = shape.entity.key.map(
    (column) => `${quoteIdent(column)}::text AS ${quoteIdent(column)}`,
  );
  const group = shape.entity.key.map(quoteIdent).join(', ');
  return `SELECT ${keys.join(', ')} FROM ${quoteIdent(TEMP.stage)} GROUP BY ${group} HAVING count(*) > 1 LIMIT 1`;
}

/**
 * Removes staged rows whose reference to `parent` does not resolve in the target, returning
 * their keys and whether the target stores them (then they must go from the target too).
 */
export function deleteOrphans(
  shape: SetShape,
  parentTable: TableName,
  pairs: readonly (readonly [child: string, parent: string])[],
): string {
  const present = pairs.map(([child]) => `${columnOf('s', child)} IS NOT NULL`).join(' AND ');
  const match = pairs
    .map(([child, parent]) => `${columnOf('p', parent)} = ${columnOf('s', child)}`)
    .join(' AND ');
  const keys = shape.entity.key.map((column) => columnOf('s', column)).join(', ');
  const deleted = `DELETE FROM ${quoteIdent(TEMP.stage)} AS s WHERE ${present}
  AND NOT EXISTS (SELECT 1 FROM ${quoteTable(parentTable)} AS p WHERE ${match}) RETURNING ${keys}`;
  const stored = `EXISTS (SELECT 1 FROM ${quoteTable(shape.entity.table)} AS t WHERE ${keyJoin(shape, 't', 'o')} AND ${targetScope(shape, 't')})`;
  const outKeys = shape.entity.key.map(
    (column) => `${columnOf('o', column)}::text AS ${quoteIdent(column)}`,
  );
  return `WITH o AS (${deleted}) SELECT ${outKeys.join(', ')}, ${stored} AS stored FROM o`;
}

/** Target rows in scope, not in the stage, whose reference to `parent` does not resolve. */
export function storedOrphans(
  shape: SetShape,
  parentTable: TableName,
  pairs: readonly (readonly [child: string, parent: string])[],
): string {
  const present = pairs.map(([child]) => `${columnOf('t', child)} IS NOT NULL`).join(' AND ');
  const match = pairs
    .map(([child, parent]) => `${columnOf('p', parent)} = ${columnOf('t', child)}`)
    .join(' AND ');
  const keys = shape.entity.key.map(
    (column) => `${columnOf('t', column)}::text AS ${quoteIdent(column)}`,
  );
  return `SELECT ${keys.join(', ')} FROM ${quoteTable(shape.entity.table)} AS t
WHERE ${targetScope(shape, 't')} AND ${present}
  AND NOT EXISTS (SELECT 1 FROM ${quoteTable(parentTable)} AS p WHERE ${match})
  AND NOT EXISTS (SELECT 1 FROM ${quoteIdent(TEMP.stage)} AS s WHERE ${keyJoin(shape, 's', 't')})`;
}

/** Removes staged rows whose key the target stores under another tenant; returns their keys. */
export function deleteHeldElsewhere(shape: SetShape): string {
  const tenant = shape.entity.tenantColumn as string;
  const keys = shape.entity.key.map(
    (column) => `${columnOf('s', column)}::text AS ${quoteIdent(column)}`,
  );
  return `DELETE FROM ${quoteIdent(TEMP.stage)} AS s USING ${quoteTable(shape.entity.table)} AS t
WHERE ${keyJoin(shape, 't', 's')} AND ${columnOf('t', tenant)} IS DISTINCT FROM ${setting(SETTING.tenant, typeOf(shape.targetTypes, tenant))}
RETURNING ${keys.join(', ')}`;
}

/** A column compared with `IS DISTINCT FROM`: json has no equality operator, jsonb does. */
function comparable(shape: SetShape, alias: string, column: string): string {
  const cls = classOf(shape, column);
  const value = columnOf(alias, column);
  if (cls === 'json') return `${value}::jsonb`;
  if (cls.startsWith('other:') || cls === 'array:json' || cls.startsWith('array:other:'))
    return `${value}::text`;
  return value;
}

/**
 * Upserts the stage into the target, writing only rows that differ, and counts inserts and
 * updates. With `returnKeys`, also returns every written key and whether it was inserted.
 */
export function upsertFromStage(shape: SetShape, returnKeys: boolean): string {
  const { entity } = shape;
  const columns = entity.columnNames.map((column: string) => quoteIdent(column)).join(', ');
  const updatable = entity.columnNames.filter((column: string) => !entity.key.includes(column));
  const key = entity.key.map(quoteIdent).join(', ');
  let conflict = 'DO NOTHING';
  if (updatable.length > 0) {
    const set = updatable
      .map((column: string) => `${quoteIdent(column)} = EXCLUDED.${quoteIdent(column)}`)
      .join(', ');
    const differs = `ROW(${updatable.map((c: string) => comparable(shape, 't', c)).join(', ')}) IS DISTINCT FROM ROW(${updatable
      .map((c: string) => comparable(shape, 'excluded', c))
      .join(', ')})`;
    const tenant =
      entity.tenantColumn === undefined
        ? ''
        : ` AND ${columnOf('t', entity.tenantColumn)} = EXCLUDED.${quoteIdent(entity.tenantColumn)}`;
    conflict = `DO UPDATE SET ${set} WHERE ${differs}${tenant}`;
  }
  const returning = [
    '(xmax = 0) AS inserted',
    ...entity.key.map((c) => `${columnOf('t', c)}::text AS ${quoteIdent(c)}`),
  ];
  const write = `INSERT INTO ${quoteTable(entity.table)} AS ${quoteIdent('t')} (${columns}) SELECT ${columns} FROM ${quoteIdent(TEMP.stage)}
ON CONFLICT (${key}) ${conflict} RETURNING ${returnKeys ? returning.join(', ') : returning[0]}`;
  return returnKeys
    ? write
    : `WITH w AS (${write}) SELECT count(*) FILTER (WHERE inserted)::int AS inserted, count(*) FILTER (WHERE NOT inserted)::int AS updated FROM w`;
}

/** Whether the target has rows in scope, and whether the table is empty for every tenant. */
export function targetPresence(shape: SetShape): string {
  return `SELECT EXISTS (SELECT 1 FROM ${quoteTable(shape.entity.table)} AS t WHERE ${targetScope(shape, 't')}) AS any_in_scope,
  NOT EXISTS (SELECT 1 FROM ${quoteTable(shape.entity.table)}) AS empty`;
}

/**
 * The planner's plan for reading the target rows in scope, for this tenant: its row estimate
 * sizes the buckets without counting a million rows, and its scan type tells how the tenant's
 * rows are best read.
 */
export function estimateTargetRows(shape: SetShape, tenantValue: unknown): Statement {
  const { entity } = shape;
  const columns = entity.columnNames.map((column: string) => quoteIdent(column)).join(', ');
  const tenant = entity.tenantColumn;
  return tenant === undefined
    ? {
        text: `EXPLAIN (FORMAT JSON) SELECT ${columns} FROM ${quoteTable(entity.table)}`,
        values: [],
      }
    : {
        text: `EXPLAIN (FORMAT JSON) SELECT ${columns} FROM ${quoteTable(entity.table)} WHERE ${quoteIdent(tenant)} = $1`,
        values: [tenantValue],
      };
}
