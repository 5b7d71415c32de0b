import type { z } from 'zod';
import type { SqlType } from '../db/pg/column-types.js';
import { commonClass, type TypeClass } from '../db/pg/column-types.js';
import { pipeCopy, supportsCopy } from '../db/pg/copy.js';
import { databaseError } from '../db/pg/errors.js';
import { toParameter } from '../db/pg/params.js';
import type { PgClient } from '../db/pg/pool.js';
import {
  analyzeSourceHash,
  changedKeyArrays,
  copyInto,
  copyIntoSourceHash,
  copySourceKeyHashes,
  copySourceRows,
  createChanged,
  createSourceHash,
  createStage,
  deleteHeldElsewhere,
  deleteOrphans,
  duplicateStageKey,
  estimateTargetRows,
  firstInvalidRow,
  missingOnSource,
  SETTING,
  type SetShape,
  setSettings,
  sourceBucketAggregate,
  storedOrphans,
  targetBucketAggregate,
  targetPresence,
  upsertFromStage,
} from '../db/pg/set-sql.js';
import type { PgSourceSnapshot } from '../db/pg/source.js';
import { sourceStatement } from '../db/pg/source.js';
import { describeTypes, rollbackToSavepoint, type Statement, savepoint } from '../db/pg/sql.js';
import type { PgSyncDatabase } from '../db/pg/sync-database.js';
import { typeParsersFor } from '../db/pg/type-parsers.js';
import type { Scope, StoredRow, TableDescription } from '../db/types.js';
import { describeKey, type PreparedRow, prepareTargetRows } from '../diff/rows.js';
import { comparesExactly } from '../entity/columns.js';
import type { AnyEntity } from '../entity/types.js';
import { DataError, formatKey, sqlState } from '../errors.js';
import type { RunContext } from './context.js';
import { type Keys, keysOf, type Outcome, removeMissing } from './outcome.js';
import type { SyncWarning } from './result.js';

type Row = Record<string, unknown>;

/** Rows per bucket in the first comparison: few buckets keep an unchanged run's traffic tiny. */
const ROWS_PER_BUCKET = 256;
const MAX_BUCKETS = 1 << 16;
/** The finer pass scans both sides once more; below this size that costs more than it saves. */
const FINE_PASS_MIN_ROWS = 50_000;
/** Above this share of changed rows nearly every fine bucket differs too. */
const FINE_PASS_MAX_CHANGE_SHARE = 0.04;
const MAX_FINE_BUCKETS = 1 << 20;
const UPSERT_SAVEPOINT = 'meter_sync_upsert';
const MIN_SERVER_VERSION = 110000;
/**
 * Transaction-local settings for the comparison. work_mem lets the per-bucket sums group in a
 * hash table: the planner cannot see the bucket count behind a setting and would otherwise sort
 * (and spill) a million rows.
 */
const SESSION_SETTINGS = {
  [SETTING.bucketMask]: '0',
  work_mem: '64MB',
  // A sync is background work: it should not claim every core of a production server.
  max_parallel_workers_per_gather: '0',
};

/** Whether the set-based path can take the entity, and how; or why not. */
export type SetBasedChoice =
  | { readonly use: true; readonly shape: SetShape }
  | { readonly use: false; readonly reason: string; readonly warning?: SyncWarning };

/**
 * The set-based path needs PostgreSQL with COPY on both sides, a schema that keeps values as
 * stored (so SQL comparison agrees with the schema), and column types whose canonical text can
 * agree. Dry runs stay in memory.
 */
export async function chooseSetBased(
  context: RunContext,
  entity: AnyEntity,
  db: PgSyncDatabase,
  description: TableDescription,
): Promise<SetBasedChoice> {
  const source = context.source as Partial<PgSourceSnapshot>;
  const targetClient = db.connection();
  if (context.dryRun) return { use: false, reason: 'dry runs compare in memory' };
  if (
    !source.client ||
    source.capabilities?.engine !== 'postgresql' ||
    !supportsCopy(source.client)
  ) {
    return {
      use: false,
      reason: 'the source is not PostgreSQL reached through node-postgres (no COPY)',
    };
  }
  const targetCapabilities = await db.capabilities();
  if (!targetClient || targetCapabilities.engine !== 'postgresql' || !supportsCopy(targetClient)) {
    return {
      use: false,
      reason: 'the target is not PostgreSQL reached through node-postgres (no COPY)',
    };
  }
  const versions = [source.capabilities.serverVersion, targetCapabilities.serverVersion];
  if (!versions.every((version) => (version ?? 0) >= MIN_SERVER_VERSION)) {
    return {
      use: false,
      reason: 'the typed hash functions need PostgreSQL 11 or later on both sides',
    };
  }
  const schema = entity.columns as z.ZodObject;
  const shape = schema.shape as Record<string, z.ZodType>;
  const inexact = entity.columnNames.filter(
    (column: string) => !comparesExactly(shape[column] as z.ZodType),
  );
  if (inexact.length > 0 || (schema._zod.def.checks ?? []).length > 0) {
    return {
      use: false,
      reason: `the schema refines or transforms values (${inexact.join(', ') || 'object checks'}), so rows are compared after parsing`,
    };
  }

  const targetTypes = new Map<string, SqlType>();
  for (const column of entity.columnNames as string[]) {
    const info = description.get(column);
    if (!info?.typeName || !info.category)
      return { use: false, reason: 'the target catalog does not describe the table' };
    targetTypes.set(column, {
      typeName: info.typeName,
      category: info.category,
      elementTypeName: info.elementTypeName,
      formatted: info.type,
    });
  }
  const sourceTypes = await describeSourceTypes(context, entity, source as PgSourceSnapshot);
  const classes = new Map<string, TypeClass>();
  const mismatched: string[] = [];
  for (const column of entity.columnNames as string[]) {
    const from = sourceTypes.get(column);
    const to = targetTypes.get(column) as SqlType;
    const common = from ? commonClass(from, to) : undefined;
    if (common) classes.set(column, common);
    else
      mismatched.push(
        `"${column}" is ${from?.formatted ?? 'unknown'} on the source and ${to.formatted} on the target`,
      );
  }
  if (mismatched.length > 0) {
    const message = `${entity.name}: compared row by row in memory, because no canonical text makes equal values equal when column ${mismatched.join('; ')}`;
    return {
      use: false,
      reason: message,
      warning: { code: 'compared-by-value', count: mismatched.length, sampleKeys: [], message },
    };
  }
  return { use: true, shape: { entity, classes, sourceTypes, targetTypes } };
}

/** The source columns' types, from the result fields of the entity's query with no rows. */
async function describeSourceTypes(
  context: RunContext,
  entity: AnyEntity,
  source: PgSourceSnapshot,
): Promise<Map<string, SqlType>> {
  const statement = sourceStatement(entity, context.scopeOf(entity));
  return source.attempt(entity, 'describing the source columns', async (client) => {
    const probe = await client.query({
      text: `SELECT * FROM (${statement.text}) AS probe LIMIT 0`,
      values: statement.values,
    });
    const fields = probe.fields ?? [];
    const described = await client.query(describeTypes(fields.map((field) => field.dataTypeID)));
    const byOid = new Map(
      described.rows.map((row) => [Number(row.oid), row as Record<string, unknown>]),
    );
    const types = new Map<string, SqlType>();
    for (const field of fields) {
      const row = byOid.get(field.dataTypeID);
      if (!row) continue;
      types.set(field.name, {
        typeName: String(row.type_name),
        category: String(row.category),
        elementTypeName:
          typeof row.element_type_name === 'string' ? row.element_type_name : undefined,
        formatted: String(row.type),
      });
    }
    return types;
  });
}

/** A client that runs statements with exact type parsers, wrapping failures with the entity. */
function runner(client: PgClient, context: RunContext, entity: AnyEntity) {
  const caps = (context.source as PgSourceSnapshot).capabilities;
  return async (statement: string | Statement, action: string): Promise<StoredRow[]> => {
    const config = typeof statement === 'string' ? { text: statement } : statement;
    try {
      return (await client.query({ ...config, ...typeParsersFor(caps) })).rows as StoredRow[];
    } catch (error) {
      throw databaseError(error, entity.name, action);
    }
  };
}

/**
 * The set-based path, inside the entity's target transaction and a source savepoint:
 *
 * 1. Compare per-bucket row counts and hash sums of both sides (one aggregate query each, run
 *    at once); an unchanged entity ends here, having moved a few kilobytes.
 * 2. For buckets that differ, COPY the source's (key, row hash) into a temporary table on the
 *    target, and find new, changed and missing keys there with one join.
 * 3. COPY the new and changed source rows into a staging table, drop orphans and keys held by
 *    other tenants, and upsert with one `INSERT … ON CONFLICT … WHERE … IS DISTINCT FROM`.
 *
 * An empty target skips the comparison and takes every row through COPY.
 */
export async function syncSetBased(
  context: RunContext,
  db: PgSyncDatabase,
  entity: AnyEntity,
  scope: Scope,
  shape: SetShape,
  warnings: readonly SyncWarning[],
): Promise<Outcome> {
  const source = context.source as PgSourceSnapshot;
  const targetClient = db.connection() as PgClient;
  const onTarget = runner(targetClient, context, entity);
  return source.attempt(entity, 'reading the source', async (sourceClient) => {
    const onSource = runner(sourceClient, context, entity);
    const tenant =
      entity.tenantColumn === undefined
        ? {}
        : { [SETTING.tenant]: String(toParameter(scope.tenantId, 'scalar')) };
    const [, [presenceRows, estimateRows]] = await Promise.all([
      onSource(setSettings({ ...tenant, ...SESSION_SETTINGS }), 'preparing the comparison'),
      onTarget(setSettings({ ...tenant, ...SESSION_SETTINGS }), 'preparing the comparison').then(
        () =>
          Promise.all([
            onTarget(targetPresence(shape), 'looking at the target'),
            onTarget(
              estimateTargetRows(shape, toParameter(scope.tenantId, 'scalar')),
              'estimating target rows',
            ),
          ]),
      ),
    ]);
    const presence = presenceRows?.[0];
    const inScope =
      presence?.any_in_scope === true ? Math.max(1, plannedRows(estimateRows?.[0])) : 0;
    const copy = (outSql: string, inSql: string, phase: 'reading' | 'comparing') =>
      pipeCopy(sourceClient, outSql, targetClient, inSql).catch((error: unknown) => {
        throw databaseError(
          error,
          entity.name,
          phase === 'reading' ? 'reading the source' : 'reading source row hashes',
        );
      });
    const progress = (phase: 'reading' | 'comparing' | 'writing', rows: number) =>
      context.emit({ type: 'entity-progress', entity: entity.name, phase, rows });

    if (inScope === 0 && presence?.empty === true && entity.references.length === 0) {
      // Nothing to compare with and no row to keep: rows go straight into the table.
      const { rows } = await copy(
        copySourceRows(shape, false),
        copyInto(shape, 'target'),
        'reading',
      ).catch(async (error: unknown) => {
        throw await explainDuplicate(error, entity, undefined);
      });
      progress('writing', rows);
      await assertValid(onTarget, shape, 'target');
      return {
        ...empty(warnings),
        inserted: { count: rows, keys: [] },
      };
    }

    await onTarget(createStage(shape), 'creating the staging table');
    let sourceTotal = 0;
    let missing: StoredRow[] = [];
    if (inScope === 0) {
      const { rows } = await copy(
        copySourceRows(shape, false),
        copyInto(shape, 'stage'),
        'reading',
      );
      sourceTotal = rows;
      progress('reading', rows);
    } else {
      const buckets = Math.min(
        MAX_BUCKETS,
        2 ** Math.ceil(Math.log2(Math.max(1, inScope / ROWS_PER_BUCKET))),
      );
      const onBoth = (settings: Record<string, string>, action: string) =>
        Promise.all([
          onSource(setSettings(settings), action),
          onTarget(setSettings(settings), action),
        ]);
      const summarise = (filtered: boolean) =>
        Promise.all([
          onSource(sourceBucketAggregate(shape, filtered), 'summarising source buckets'),
          onTarget(targetBucketAggregate(shape, filtered), 'summarising target buckets'),
        ]);
      await onBoth({ [SETTING.bucketMask]: String(buckets - 1) }, 'preparing buckets');
      const [sourceSums, targetSums] = await summarise(false);
      sourceTotal = sourceSums.reduce((sum, row) => sum + Number(row.rows), 0);
      progress('comparing', sourceTotal);
      let differing = differingBuckets(sourceSums, targetSums);
      let mask = buckets - 1;
      const fine = finerBuckets(buckets, differing.length, inScope);
      if (differing.length > 0 && fine !== undefined) {
        // Few changes spread over many buckets: sum again per finer bucket, within the
        // differing ones, so that only the rows of differing fine buckets travel.
        await onBoth(
          {
            [SETTING.bucketMask]: String(fine - 1),
            [SETTING.filterMask]: String(mask),
            [SETTING.buckets]: `{${differing.join(',')}}`,
          },
          'preparing finer buckets',
        );
        const [sourceFine, targetFine] = await summarise(true);
        differing = differingBuckets(sourceFine, targetFine);
        mask = fine - 1;
      }
      if (differing.length > 0) {
        const someBuckets = differing.length <= (mask + 1) / 2;
        if (someBuckets) {
          await onBoth(
            { [SETTING.filterMask]: String(mask), [SETTING.buckets]: `{${differing.join(',')}}` },
            'listing buckets',
          );
        }
        await onTarget(createSourceHash(shape), 'creating the hash table');
        await copy(copySourceKeyHashes(shape, someBuckets), copyIntoSourceHash(shape), 'comparing');
        // Statistics let the planner hash-join a million rows instead of probing the index per row.
        await onTarget(analyzeSourceHash, 'comparing row hashes');
        await onTarget(createChanged(shape, someBuckets), 'finding changed rows');
        const [changed] = await onTarget(changedKeyArrays(shape), 'listing changed keys');
        missing = await onTarget(missingOnSource(shape), 'finding rows missing on the source');
        if (Number(changed?.changed ?? 0) > 0) {
          const keys = Object.fromEntries(
            entity.key.map((_, index) => [SETTING.key(index), String(changed?.[`k${index}`])]),
          );
          await onSource(setSettings(keys), 'listing changed keys');
          const { rows } = await copy(
            copySourceRows(shape, true),
            copyInto(shape, 'stage'),
            'reading',
          );
          progress('reading', rows);
        }
      }
    }

    await assertValid(onTarget, shape, 'stage');
    const orphans = await removeOrphans(context, onTarget, shape);
    const heldElsewhere =
      entity.tenantColumn === undefined
        ? []
        : await onTarget(deleteHeldElsewhere(shape), 'checking keys of other tenants');
    const listChanges = context.settings.listChanges;
    // A savepoint lets the duplicate key be looked up after a failed upsert.
    await onTarget(savepoint(UPSERT_SAVEPOINT), 'writing staged rows');
    const written = await onTarget(
      upsertFromStage(shape, listChanges),
      'writing staged rows',
    ).catch(async (error) => {
      throw await explainDuplicate(error, entity, async () => {
        await onTarget(rollbackToSavepoint(UPSERT_SAVEPOINT), 'finding the duplicate key');
        return onTarget(duplicateStageKey(shape), 'finding the duplicate key');
      });
    });
    const inserted = listChanges ? written.filter((row) => row.inserted === true) : [];
    const updated = listChanges ? written.filter((row) => row.inserted !== true) : [];
    const insertedCount = listChanges ? inserted.length : Number(written[0]?.inserted ?? 0);
    const updatedCount = listChanges ? updated.length : Number(written[0]?.updated ?? 0);

    // Rows to remove: missing on the source, orphans the target stores, and stored rows whose
    // parent is gone although the source row is unchanged.
    const toRemove = new Map<string, PreparedRow<Row>>();
    for (const row of prepareTargetRows(entity, [...missing, ...orphans.stored]))
      toRemove.set(row.key, row);
    const storedOnly = await storedOrphanRows(context, onTarget, shape);
    let unchangedOrphans = 0;
    for (const row of prepareTargetRows(entity, storedOnly)) {
      if (toRemove.has(row.key)) continue;
      toRemove.set(row.key, row);
      unchangedOrphans++;
    }
    const removeRows = [...toRemove.values()];
    const removal = await removeMissing(context, db, entity, scope, {
      hard: entity.onMissing === 'delete' ? removeRows : [],
      soft: entity.onMissing === 'delete' ? [] : removeRows,
    });
    progress('writing', insertedCount + updatedCount + removal.deleted.count);

    const orphanCount = orphans.rows.length + unchangedOrphans;
    const held = prepareTargetRows(entity, heldElsewhere);
    return {
      inserted: listChanges
        ? keysOf(context, entity, prepareTargetRows(entity, inserted), true)
        : count(insertedCount),
      updated: listChanges
        ? keysOf(context, entity, prepareTargetRows(entity, updated), true)
        : count(updatedCount),
      deleted: removal.deleted,
      unchanged:
        sourceTotal -
        insertedCount -
        updatedCount -
        orphanCount -
        held.length +
        removal.softUnchanged,
      orphans: {
        count: orphanCount,
        keys: prepareTargetRows(entity, [...orphans.rows, ...storedOnly])
          .slice(0, 5)
          .map((row) => describeKey(entity, row.row)),
        parents: orphans.parents,
      },
      heldElsewhere: keysOf(context, entity, held),
      kept: removal.kept,
      cascades: removal.cascades,
      warnings,
    };
  });
}

const count = (n: number): Keys => ({ count: n, keys: [] });

function empty(warnings: readonly SyncWarning[]): Outcome {
  return {
    inserted: count(0),
    updated: count(0),
    deleted: count(0),
    unchanged: 0,
    orphans: { ...count(0), parents: [] },
    heldElsewhere: count(0),
    kept: { ...count(0), referencedBy: [] },
    cascades: [],
    warnings,
  };
}

/**
 * The finer bucket count worth a second pass, or undefined. From the share of differing buckets
 * the number of changed rows is estimated (changes fall into buckets like balls into bins); a
 * second pass pays when they are few enough that most fine buckets stay equal.
 */
export function finerBuckets(buckets: number, differing: number, rows: number): number | undefined {
  const share = differing / buckets;
  // Near saturation the share no longer tells how many rows changed: assume many.
  if (rows < FINE_PASS_MIN_ROWS || share <= 0.25 || share > 0.98) return undefined;
  const changes = -buckets * Math.log(1 - share);
  if (changes > rows * FINE_PASS_MAX_CHANGE_SHARE) return undefined;
  const fine = 2 ** Math.ceil(Math.log2(changes * 4));
  return fine > buckets ? Math.min(fine, MAX_FINE_BUCKETS) : undefined;
}

/** `Plan Rows` of an `EXPLAIN (FORMAT JSON)` result row. */
function plannedRows(row: StoredRow | undefined): number {
  const plan = row?.['QUERY PLAN'];
  const parsed = typeof plan === 'string' ? JSON.parse(plan) : plan;
  return Number(
    (parsed as { Plan?: { 'Plan Rows'?: number } }[] | undefined)?.[0]?.Plan?.['Plan Rows'] ?? 0,
  );
}

function differingBuckets(source: readonly StoredRow[], target: readonly StoredRow[]): string[] {
  const summary = (rows: readonly StoredRow[]) =>
    new Map(rows.map((row) => [String(row.bucket), `${row.rows}:${row.hash_sum}`]));
  const a = summary(source);
  const b = summary(target);
  const differing = new Set<string>();
  for (const [bucket, value] of a) if (b.get(bucket) !== value) differing.add(bucket);
  for (const bucket of b.keys()) if (!a.has(bucket)) differing.add(bucket);
  return [...differing];
}

type Run = ReturnType<typeof runner>;

/** Throws a `DataError` for the first row that breaks the schema's NULL rules or the tenant. */
async function assertValid(run: Run, shape: SetShape, table: 'stage' | 'target'): Promise<void> {
  const { entity } = shape;
  const columns = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  const required = entity.columnNames.filter(
    (column: string) => !columns[column]?.safeParse(null).success,
  );
  const [bad] = await run(firstInvalidRow(shape, table, required), 'checking source rows');
  if (!bad) return;
  const [parsed] = prepareTargetRows(entity, [bad]);
  const key = formatKey(
    Object.fromEntries(entity.key.map((column) => [column, parsed?.row[column]])),
  );
  const column = required.find((c: string) => bad[`null:${c}`] === true);
  if (column !== undefined) {
    throw new DataError(
      `${entity.name}: source row ${key} column "${column}" is NULL, which the schema does not allow`,
      {
        entity: entity.name,
        key: parsed?.row,
        column,
      },
    );
  }
  const tenantColumn = entity.tenantColumn as string;
  throw new DataError(
    `${entity.name}: source row ${key} has ${tenantColumn}=${String(bad.meter_sync_tenant ?? 'NULL')}, outside the run's tenant; the source query must filter by $1`,
    { entity: entity.name, key: parsed?.row, column: tenantColumn },
  );
}

/** A duplicate key in the source surfaces as a unique or "affect row a second time" error. */
async function explainDuplicate(
  error: unknown,
  entity: AnyEntity,
  findKey: (() => Promise<StoredRow[]>) | undefined,
): Promise<unknown> {
  const driverError = (error as { cause?: unknown }).cause ?? error;
  const code = sqlState(driverError);
  if (code !== '21000' && !(code === '23505' && findKey === undefined)) return error;
  const [row] = findKey
    ? await findKey().catch(() => [])
    : [keyFromDetail(entity, driverError)].filter(Boolean);
  const [parsed] = row ? prepareTargetRows(entity, [row]) : [];
  const detail = (driverError as { detail?: unknown }).detail;
  const key = parsed
    ? ` ${describeKey(entity, parsed.row)}`
    : typeof detail === 'string'
      ? ` (${detail})`
      : '';
  return new DataError(
    `${entity.name}: the source returned key${key} more than once; the key (${entity.key.join(', ')}) must be unique`,
    { entity: entity.name, key: parsed?.row, cause: error },
  );
}

/** The key in a unique violation's detail, `Key (a, b)=(1, x) already exists.`, when it parses. */
function keyFromDetail(entity: AnyEntity, error: unknown): StoredRow | undefined {
  const detail = (error as { detail?: unknown }).detail;
  const match =
    typeof detail === 'string' ? /^Key \((.+)\)=\((.*)\) already exists/.exec(detail) : null;
  if (!match) return undefined;
  const columns = (match[1] as string).split(', ').map((c) => c.replace(/^"|"$/g, ''));
  const values = (match[2] as string).split(', ');
  if (columns.length !== values.length || columns.some((c, i) => c !== entity.key[i]))
    return undefined;
  return Object.fromEntries(columns.map((column, i) => [column, values[i]]));
}

/** Drops staged rows whose parents are missing; reports them and those the target stores. */
async function removeOrphans(context: RunContext, run: Run, shape: SetShape) {
  const rows: StoredRow[] = [];
  const stored: StoredRow[] = [];
  const parents = new Set<string>();
  for (const reference of shape.entity.references) {
    const parent = context.registry.get(reference.entity);
    const pairs = Object.entries(reference.columns) as [string, string][];
    const found = await run(
      deleteOrphans(shape, parent.table, pairs),
      `checking references to ${parent.name}`,
    );
    if (found.length > 0) parents.add(parent.name);
    rows.push(...found);
    stored.push(...found.filter((row) => row.stored === true));
  }
  return { rows, stored, parents: [...parents] };
}

/** Stored rows (not staged) whose parents are missing. */
async function storedOrphanRows(
  context: RunContext,
  run: Run,
  shape: SetShape,
): Promise<StoredRow[]> {
  const rows: StoredRow[] = [];
  for (const reference of shape.entity.references) {
    const parent = context.registry.get(reference.entity);
    const pairs = Object.entries(reference.columns) as [string, string][];
    rows.push(
      ...(await run(
        storedOrphans(shape, parent.table, pairs),
        `checking stored references to ${parent.name}`,
      )),
    );
  }
  return rows;
}
