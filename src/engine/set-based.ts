import type { z } from 'zod/v4';
import type { SqlType } from '../db/pg/column-types.js';
import { commonClass, type TypeClass } from '../db/pg/column-types.js';
import { copyOutBinaryRow, copyOutFields, pipeCopy, supportsCopy } from '../db/pg/copy.js';
import { databaseError } from '../db/pg/errors.js';
import { toParameter } from '../db/pg/params.js';
import type { PgClient } from '../db/pg/pool.js';
import {
  analyzeSourceHash,
  changedKeyArrays,
  copyInto,
  copyIntoSourceHash,
  copyOrderedKeyHashes,
  copySourceKeyHashes,
  copySourceRows,
  createChanged,
  createSourceHash,
  createStage,
  deleteHeldElsewhere,
  deleteOrphans,
  deleteRepeatedKeys,
  duplicateStageKey,
  estimateTargetRows,
  invalidRows,
  missingOnSource,
  SETTING,
  type SetShape,
  setSettings,
  sourceBucketFingerprints,
  storedOrphans,
  targetBucketFingerprints,
  targetPresence,
  upsertFromStage,
} from '../db/pg/set-sql.js';
import type { PgSourceSnapshot } from '../db/pg/source.js';
import { sourceStatement } from '../db/pg/source.js';
import { describeTypes, rollbackToSavepoint, type Statement, savepoint } from '../db/pg/sql.js';
import type { PgSyncDatabase } from '../db/pg/sync-database.js';
import { typeParsersFor } from '../db/pg/type-parsers.js';
import type { Scope, StoredRow, TableDescription } from '../db/types.js';
import { mergeKeyHashes, RepeatedKey } from '../diff/merge.js';
import { describeKey, type PreparedRow, prepareTargetRows } from '../diff/rows.js';
import { comparesExactly } from '../entity/columns.js';
import type { AnyEntity } from '../entity/types.js';
import { DataError, formatKey, sqlState } from '../errors.js';
import type { RunContext } from './context.js';
import {
  characterLimits,
  invalidRows as invalidOutcome,
  type Keys,
  keysOf,
  type Outcome,
  removeMissing,
} from './outcome.js';
import type { SyncWarning } from './result.js';
import { allSettledOrFirstError } from './settle.js';

type Row = Record<string, unknown>;

/**
 * Rows per bucket. Each bucket costs 8 bytes on the wire (an eighth of a byte per row) and a
 * group in the aggregate that computes it. Measured at a million rows: 16 rows per bucket made
 * an unchanged run's aggregate 35% slower, 256 left nine buckets in ten differing after 1% of
 * rows changed. 32 made a 1%-changed run 27% faster (half as many buckets to descend into) and
 * an unchanged run 20% slower; 64 keeps the common unchanged run cheaper.
 */
const ROWS_PER_BUCKET = 64;
const MAX_BUCKETS = 1 << 16;
const UPSERT_SAVEPOINT = 'meter_sync_upsert';
const DIRECT_SAVEPOINT = 'meter_sync_direct';
/** Constraint errors after which a direct COPY is retried through the stage, to name the row. */
const DATA_ERRORS = new Set(['23505', '23502', '22001', '23514']);
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
/** On the sync database, room for the key join to hash a million rows in one batch. */
const TARGET_SETTINGS = { ...SESSION_SETTINGS, work_mem: '256MB' };

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
  const xorAggregate = versions.every((version) => (version ?? 0) >= 140000);
  const limits = characterLimits(description);
  return { use: true, shape: { entity, classes, sourceTypes, targetTypes, xorAggregate, limits } };
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
    const [, [presenceRows, estimatedRows]] = await allSettledOrFirstError([
      onSource(setSettings({ ...tenant, ...SESSION_SETTINGS }), 'preparing the comparison'),
      // The target's statements run one after another on its one connection.
      (async () => {
        await onTarget(setSettings({ ...tenant, ...TARGET_SETTINGS }), 'preparing the comparison');
        const presence = await onTarget(targetPresence(shape), 'looking at the target');
        const estimate = await onTarget(
          estimateTargetRows(shape, toParameter(scope.tenantId, 'scalar')),
          'estimating target rows',
        );
        return [presence, estimate] as const;
      })(),
    ]);
    const presence = presenceRows?.[0];
    const estimateRows = estimatedRows ?? [];
    const inScope = presence?.any_in_scope === true ? Math.max(1, plannedRows(estimateRows[0])) : 0;
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

    if (
      inScope === 0 &&
      presence?.empty === true &&
      entity.references.length === 0 &&
      entity.invalidRows === 'fail'
    ) {
      // Nothing to compare with and no row to keep: rows go straight into the table. Should a
      // row break a constraint, the savepoint takes the COPY back and the staged path below
      // finds and names the row.
      await onTarget(savepoint(DIRECT_SAVEPOINT), 'copying rows');
      const direct = await copy(
        copySourceRows(shape, false),
        copyInto(shape, 'target'),
        'reading',
      ).catch(async (error: unknown) => {
        if (!DATA_ERRORS.has(sqlState((error as { cause?: unknown }).cause ?? error) ?? ''))
          throw error;
        await onTarget(rollbackToSavepoint(DIRECT_SAVEPOINT), 'copying rows');
        return undefined;
      });
      if (direct) {
        progress('writing', direct.rows);
        await checkRows(onTarget, shape, 'target');
        return { ...empty(warnings), inserted: { count: direct.rows, keys: [] } };
      }
    }

    await onTarget(createStage(shape), 'creating the staging table');
    let sourceTotal = 0;
    let nullKeys = 0;
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
        allSettledOrFirstError([
          onSource(setSettings(settings), action),
          onTarget(setSettings(settings), action),
        ]);
      await onBoth({ [SETTING.bucketMask]: String(buckets - 1) }, 'preparing buckets');
      const fingerprints = (client: PgClient, sql: string, action: string) =>
        copyOutBinaryRow(client, `COPY (${sql}) TO STDOUT (FORMAT binary)`).catch(
          (error: unknown) => {
            throw databaseError(error, entity.name, action);
          },
        );
      const [sourceSums, targetSums] = await allSettledOrFirstError([
        scanningAsPlanned(onSource, sourceScanPlan(shape, scope), () =>
          fingerprints(sourceClient, sourceBucketFingerprints(shape), 'summarising source buckets'),
        ),
        scanningAsPlanned(onTarget, estimateRows, () =>
          fingerprints(targetClient, targetBucketFingerprints(shape), 'summarising target buckets'),
        ),
      ]);
      sourceTotal = Number(sourceSums[1]?.readBigInt64BE(0) ?? 0);
      nullKeys = Number(sourceSums[2]?.readBigInt64BE(0) ?? 0);
      if (nullKeys > 0 && entity.invalidRows === 'fail') throw nullKeyError(entity, nullKeys);
      progress('comparing', sourceTotal);
      const differing = differingBuckets(sourceSums[0], targetSums[0]);
      if (differing.length > 0) {
        const someBuckets = differing.length <= buckets / 2;
        if (someBuckets)
          await onBoth({ [SETTING.buckets]: `{${differing.join(',')}}` }, 'listing buckets');
        let keyArrays: Record<string, string> | undefined;
        if (orderedByInteger(shape) && entity.invalidRows === 'fail') {
          // For a share of the buckets, a sequential scan and a sort of their rows beat walking
          // the whole key index (when the tenant holds most of the table); for all of them the
          // index order saves sorting every row.
          const compare = () => compareInKeyOrder(sourceClient, targetClient, shape, someBuckets);
          const compared = await (someBuckets
            ? scanningAsPlanned(onSource, sourceScanPlan(shape, scope), () =>
                scanningAsPlanned(onTarget, estimateRows, compare),
              )
            : compare()
          ).catch((error: unknown) => {
            throw comparisonError(error, entity);
          });
          missing = compared.missing;
          keyArrays = compared.changed;
        } else {
          await onTarget(createSourceHash(shape), 'creating the hash table');
          await copy(
            copySourceKeyHashes(shape, someBuckets),
            copyIntoSourceHash(shape),
            'comparing',
          );
          // Statistics let the planner hash-join a million rows instead of probing the index per row.
          await onTarget(analyzeSourceHash, 'comparing row hashes');
          await onTarget(createChanged(shape, someBuckets), 'finding changed rows');
          const [changed] = await onTarget(changedKeyArrays(shape), 'listing changed keys');
          missing = await onTarget(missingOnSource(shape), 'finding rows missing on the source');
          if (Number(changed?.changed ?? 0) > 0) {
            keyArrays = Object.fromEntries(
              entity.key.map((_, i) => [SETTING.key(i), String(changed?.[`k${i}`])]),
            );
          }
        }
        if (keyArrays) {
          await onSource(setSettings(keyArrays), 'listing changed keys');
          const { rows } = await copy(
            copySourceRows(shape, true),
            copyInto(shape, 'stage'),
            'reading',
          );
          progress('reading', rows);
        }
      }
    }

    const invalid = [
      ...Array.from({ length: nullKeys }, () => nullKeyError(entity, 1)),
      ...(await checkRows(onTarget, shape, 'stage')),
    ];
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
      invalid: invalidOutcome(invalid),
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
    invalid: { ...count(0), firstProblem: undefined },
    kept: { ...count(0), referencedBy: [] },
    cascades: [],
    warnings,
  };
}

/** Whether both sides can list (key, hash) in the same key order: integer keys. */
function orderedByInteger(shape: SetShape): boolean {
  return shape.entity.key.every((column) => shape.classes.get(column) === 'integer');
}

/**
 * Streams (key, hash) in key order from both sides at once and merges them here: no temporary
 * table, no join, and memory for the differences only. Returns the changed keys as array
 * literals for the source, and the keys missing on the source.
 */
async function compareInKeyOrder(
  sourceClient: PgClient,
  targetClient: PgClient,
  shape: SetShape,
  someBuckets: boolean,
): Promise<{ changed: Record<string, string> | undefined; missing: StoredRow[] }> {
  const width = shape.entity.key.length;
  const stream = (client: PgClient, side: 'source' | 'target') => {
    const fields = copyOutFields(client, copyOrderedKeyHashes(shape, side, someBuckets));
    const rows = (async function* () {
      for await (const batch of fields)
        yield batch.map((row) => ({ key: row.slice(0, width), hash: row[width] as string }));
    })();
    return { fields, rows };
  };
  const source = stream(sourceClient, 'source');
  const target = stream(targetClient, 'target');
  const changed: string[][] = shape.entity.key.map(() => []);
  const missing: StoredRow[] = [];
  try {
    await mergeKeyHashes(source.rows, target.rows, (difference) => {
      if (difference.kind === 'missing') {
        missing.push(
          Object.fromEntries(shape.entity.key.map((column, i) => [column, difference.key[i]])),
        );
      } else {
        for (const [i, value] of difference.key.entries()) changed[i]?.push(value);
      }
    });
  } catch (error) {
    // A COPY left half-read would keep its connection busy: read both to their end.
    await Promise.all([drain(source.fields), drain(target.fields)]);
    throw error;
  }
  const count = changed[0]?.length ?? 0;
  return {
    changed:
      count === 0
        ? undefined
        : Object.fromEntries(changed.map((values, i) => [SETTING.key(i), `{${values.join(',')}}`])),
    missing,
  };
}

/** A key the source repeats is the source's data at fault; anything else is the database's. */
function comparisonError(error: unknown, entity: AnyEntity): Error {
  if (!(error instanceof RepeatedKey))
    return databaseError(error, entity.name, 'comparing row hashes');
  const [row] = prepareTargetRows(entity, [
    Object.fromEntries(entity.key.map((c, i) => [c, error.key[i]])),
  ]);
  return new DataError(
    `${entity.name}: the ${error.side} returned key ${describeKey(entity, row?.row ?? {})} more than once; the key (${entity.key.join(', ')}) must be unique`,
    { entity: entity.name, key: row?.row },
  );
}

async function drain(rows: AsyncIterable<unknown>): Promise<void> {
  try {
    for await (const _ of rows) {
      // discard
    }
  } catch {
    // the stream's own failure is already being reported
  }
}

/**
 * Runs `work` with the plan the server would choose if it saw the tenant id. The statements get
 * the id through a setting the planner cannot read, so it guesses an even share of rows and may
 * walk the tenant index for a tenant that holds nearly the whole table. When the plan for the
 * bound id (`EXPLAIN` of a parameterised SELECT) is a sequential scan, index scans are switched
 * off for the duration of `work`, then put back as they were.
 */
async function scanningAsPlanned<T>(
  run: Run,
  plan: Statement | readonly StoredRow[] | undefined,
  work: () => Promise<T>,
): Promise<T> {
  const rows =
    plan === undefined || Array.isArray(plan)
      ? plan
      : await run(plan as Statement, 'planning the scan');
  if (!rows || topNodeType(rows[0]) !== 'Seq Scan') return work();
  const [before] = await run(SCAN_SETTINGS_NOW, 'planning the scan');
  await run(
    setSettings({ enable_indexscan: 'off', enable_bitmapscan: 'off' }),
    'planning the scan',
  );
  try {
    return await work();
  } finally {
    await run(
      setSettings({
        enable_indexscan: String(before?.indexscan),
        enable_bitmapscan: String(before?.bitmapscan),
      }),
      'planning the scan',
    );
  }
}

const SCAN_SETTINGS_NOW =
  "SELECT current_setting('enable_indexscan') AS indexscan, current_setting('enable_bitmapscan') AS bitmapscan";

/** The source plan that tells whether to scan sequentially: table sources of one tenant only. */
function sourceScanPlan(shape: SetShape, scope: Scope): Statement | undefined {
  if (shape.entity.source.kind !== 'table' || shape.entity.tenantColumn === undefined)
    return undefined;
  const statement = sourceStatement(shape.entity, scope);
  return { text: `EXPLAIN (FORMAT JSON) ${statement.text}`, values: statement.values };
}

function topNodeType(row: StoredRow | undefined): string | undefined {
  const plan = row?.['QUERY PLAN'];
  const parsed = typeof plan === 'string' ? JSON.parse(plan) : plan;
  return (parsed as { Plan?: { 'Node Type'?: string } }[] | undefined)?.[0]?.Plan?.['Node Type'];
}

/** `Plan Rows` of an `EXPLAIN (FORMAT JSON)` result row. */
function plannedRows(row: StoredRow | undefined): number {
  const plan = row?.['QUERY PLAN'];
  const parsed = typeof plan === 'string' ? JSON.parse(plan) : plan;
  return Number(
    (parsed as { Plan?: { 'Plan Rows'?: number } }[] | undefined)?.[0]?.Plan?.['Plan Rows'] ?? 0,
  );
}

/** The buckets whose 8-byte fingerprints differ between the two sides. */
function differingBuckets(
  source: Buffer | null | undefined,
  target: Buffer | null | undefined,
): number[] {
  const a = source ?? Buffer.alloc(0);
  const b = target ?? Buffer.alloc(0);
  const differing: number[] = [];
  for (let offset = 0; offset < Math.max(a.length, b.length); offset += 8) {
    if (
      offset + 8 > a.length ||
      offset + 8 > b.length ||
      a.readBigInt64BE(offset) !== b.readBigInt64BE(offset)
    ) {
      differing.push(offset / 8);
    }
  }
  return differing;
}

type Run = ReturnType<typeof runner>;

/**
 * Checks staged (or just copied) rows against the definition: NULL where the schema allows
 * none, a value too long for its target column, a row of another tenant, a repeated key. By
 * default the first such row fails the entity; with `invalidRows: 'skip'` they are removed from
 * the stage and returned, to be reported.
 */
async function checkRows(
  run: Run,
  shape: SetShape,
  table: 'stage' | 'target',
): Promise<DataError[]> {
  const { entity } = shape;
  const columns = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  const required = entity.columnNames.filter(
    (column: string) => !columns[column]?.safeParse(null).success,
  );
  const skip = table === 'stage' && entity.invalidRows === 'skip';
  const statement = invalidRows(shape, table, required, skip ? 'delete' : 'first');
  const bad = statement === undefined ? [] : await run(statement, 'checking source rows');
  const problems = bad.map((row) => rowProblem(shape, required, row));
  if (!skip) {
    if (problems[0]) throw problems[0];
    return [];
  }
  const repeated = await run(deleteRepeatedKeys(shape), 'checking source keys');
  for (const row of repeated) {
    const [parsed] = prepareTargetRows(entity, [row]);
    problems.push(
      new DataError(
        `${entity.name}: the source returned key ${describeKey(entity, parsed?.row ?? {})} more than once; the key (${entity.key.join(', ')}) must be unique`,
        { entity: entity.name, key: parsed?.row },
      ),
    );
  }
  return problems;
}

/** Source rows with a NULL key column: they cannot be matched, and the source is at fault. */
function nullKeyError(entity: AnyEntity, rows: number): DataError {
  const key = Object.fromEntries(entity.key.map((column) => [column, null]));
  return new DataError(
    `${entity.name}: the source returned ${rows} row(s) with NULL in the key (${entity.key.join(', ')}); every key column must have a value`,
    { entity: entity.name, key, column: entity.key.length === 1 ? entity.key[0] : undefined },
  );
}

/** The `DataError` for one row `invalidRows` returned. */
function rowProblem(shape: SetShape, required: readonly string[], bad: StoredRow): DataError {
  const { entity } = shape;
  const [parsed] = prepareTargetRows(entity, [bad]);
  const key = formatKey(
    Object.fromEntries(entity.key.map((column) => [column, parsed?.row[column]])),
  );
  const where = (column: string) => ({ entity: entity.name, key: parsed?.row, column });
  const empty = required.find((c: string) => bad[`null:${c}`] === true);
  if (empty !== undefined) {
    return new DataError(
      `${entity.name}: source row ${key} column "${empty}" is NULL, which the schema does not allow`,
      where(empty),
    );
  }
  for (const [column, limit] of shape.limits) {
    const length = bad[`length:${column}`];
    if (length === null || length === undefined) continue;
    return new DataError(
      `${entity.name}: source row ${key} column "${column}" holds ${String(length)} characters, more than the ${limit} its target column allows (widen the column)`,
      where(column),
    );
  }
  const tenantColumn = entity.tenantColumn as string;
  return new DataError(
    `${entity.name}: source row ${key} has ${tenantColumn}=${String(bad.meter_sync_tenant ?? 'NULL')}, outside the run's tenant; the source query must filter by $1`,
    where(tenantColumn),
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
