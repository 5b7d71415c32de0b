import type { z } from 'zod';
import type { Scope, SyncDatabase } from '../db/types.js';
import { canonical, encodeKey } from '../diff/canonical.js';
import { type Plan, planChanges, type SoftDelete } from '../diff/plan.js';
import {
  canonicalColumns,
  describeKey,
  keyOf,
  type PreparedRow,
  prepareSourceRows,
  prepareTargetRows,
} from '../diff/rows.js';
import type { AnyEntity } from '../entity/types.js';
import { formatKey, MeterSyncError, SchemaError } from '../errors.js';
import type { RunContext } from './context.js';
import { type DeletionPlan, type Orphan, planDeletion, splitOrphans } from './references.js';
import type { EntityTally, SyncWarning } from './result.js';

type Row = Record<string, unknown>;

/** What an entity's transaction decided, counted only once it committed. */
interface Outcome {
  readonly plan: Plan<Row>;
  readonly inserts: readonly PreparedRow<Row>[];
  readonly heldElsewhere: readonly PreparedRow<Row>[];
  readonly orphans: readonly Orphan<Row>[];
  readonly deletion: DeletionPlan<Row>;
}

const SAMPLE_KEYS = 5;

/**
 * Syncs one entity: reads its rows from the source snapshot, then in ONE target transaction
 * diffs them against the target, removes orphans, deletes (children first), soft-deletes and
 * upserts. Any failure rolls the transaction back and is recorded; it never escapes, so the
 * next entity still runs.
 */
export async function syncEntity(context: RunContext, entity: AnyEntity): Promise<void> {
  const tally = context.tally(entity);
  const started = performance.now();
  const scope = context.scopeOf(entity);
  context.emit({ type: 'entity-start', entity: entity.name });
  try {
    const rawRows = await context.source.read(entity, scope);
    context.emit({
      type: 'entity-progress',
      entity: entity.name,
      phase: 'reading',
      rows: rawRows.length,
    });
    const tenant = entity.tenantColumn === undefined ? undefined : context.tenant;
    const sourceRows = prepareSourceRows(entity, rawRows, tenant);
    const { statementTimeoutMs, lockTimeoutMs } = context.settings;
    const outcome = await context.target.transaction(
      (db) => decideAndApply(context, db, entity, scope, sourceRows),
      { statementTimeoutMs, lockTimeoutMs },
    );
    record(context, entity, tally, outcome);
    tally.durationMs = performance.now() - started;
    const { inserted, updated, deleted, skipped, unchanged } = tally;
    context.logger.info(
      {
        entity: entity.name,
        inserted,
        updated,
        deleted,
        skipped,
        unchanged,
        ms: Math.round(tally.durationMs),
        dryRun: context.dryRun,
      },
      context.dryRun ? 'entity planned' : 'entity synced',
    );
  } catch (error) {
    tally.durationMs = performance.now() - started;
    tally.error =
      error instanceof MeterSyncError
        ? error
        : new MeterSyncError(
            `${entity.name}: ${error instanceof Error ? error.message : String(error)}`,
            {
              entity: entity.name,
              cause: error,
            },
          );
    context.logger.error(
      { entity: entity.name, err: tally.error },
      'entity failed; its changes were rolled back',
    );
  }
  context.emit({ type: 'entity-end', entity: entity.name, result: tally.toResult() });
}

async function decideAndApply(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  scope: Scope,
  sourceRows: readonly PreparedRow<Row>[],
): Promise<Outcome> {
  await checkTargetTable(db, entity);
  const projected = context.dryRun ? context.projection(entity).removed : undefined;
  const targetRows = prepareTargetRows(entity, await db.scan(entity, { scope })).filter(
    (row) => !projected?.has(row.key),
  );
  const { kept, orphans } = await splitOrphans(context, db, entity, sourceRows);
  const plan = planChanges(kept, targetRows, softDeleteOf(entity));
  context.emit({
    type: 'entity-progress',
    entity: entity.name,
    phase: 'comparing',
    rows: sourceRows.length,
  });

  const elsewhere = await keysStoredElsewhere(db, entity, plan.inserts, scope);
  const inserts = plan.inserts.filter((row) => !elsewhere.has(row.key));
  const heldElsewhere = plan.inserts.filter((row) => elsewhere.has(row.key));
  const deletion = await planDeletion(context, db, entity, plan.deletes);

  if (context.dryRun) {
    for (const cascade of deletion.cascades)
      addAll(context.projection(cascade.entity).removed, cascade.encodedKeys);
    addAll(
      context.projection(entity).removed,
      deletion.deletable.map((row) => row.key),
    );
    addAll(
      context.projection(entity).added,
      inserts.map((row) => row.key),
    );
  } else {
    for (const cascade of deletion.cascades) {
      await db.deleteByKey(cascade.entity, cascade.keys, context.scopeOf(cascade.entity));
    }
    await db.deleteByKey(
      entity,
      deletion.deletable.map((row) => keyOf(entity, row.row)),
      scope,
    );
    if (entity.onMissing !== 'delete' && plan.softDeletes.length > 0) {
      const keys = plan.softDeletes.map((row) => keyOf(entity, row.row));
      await db.updateByKey(entity, keys, entity.onMissing.set, scope);
    }
    await db.upsert(
      entity,
      [...inserts, ...plan.updates].map((row) => row.row),
      scope,
    );
    const written =
      inserts.length + plan.updates.length + deletion.deletable.length + plan.softDeletes.length;
    context.emit({ type: 'entity-progress', entity: entity.name, phase: 'writing', rows: written });
  }
  return { plan, inserts, heldElsewhere, orphans, deletion };
}

/** Fails before any write when the target table or one of the synced columns is missing. */
async function checkTargetTable(db: SyncDatabase, entity: AnyEntity): Promise<void> {
  const table =
    entity.table.schema === undefined
      ? entity.table.name
      : `${entity.table.schema}.${entity.table.name}`;
  const description = await db.describe(entity);
  if (!description) {
    throw new SchemaError(
      `${entity.name}: target table "${table}" does not exist (create it; syncSchemaSql has the built-in tables)`,
      { entity: entity.name },
    );
  }
  const missing = entity.columnNames.filter((column: string) => !description.has(column));
  if (missing.length > 0) {
    throw new SchemaError(
      `${entity.name}: column${missing.length > 1 ? 's' : ''} ${missing.map((c: string) => `"${c}"`).join(', ')} missing on the target table "${table}" (add ${missing.length > 1 ? 'them' : 'it'} or remove ${missing.length > 1 ? 'them' : 'it'} from the definition)`,
      { entity: entity.name, column: missing[0] },
    );
  }
}

function softDeleteOf(entity: AnyEntity): SoftDelete | undefined {
  if (entity.onMissing === 'delete') return undefined;
  const shape = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  const entries = Object.entries(entity.onMissing.set);
  return {
    positions: entries.map(([column]) => entity.columnNames.indexOf(column)),
    values: entries.map(([column, value]) => canonical(shape[column]?.parse(value))),
  };
}

/** Of the rows about to be inserted, the keys the target already stores under another tenant. */
async function keysStoredElsewhere(
  db: SyncDatabase,
  entity: AnyEntity,
  inserts: readonly PreparedRow<Row>[],
  scope: Scope,
): Promise<Set<string>> {
  if (entity.tenantColumn === undefined || inserts.length === 0) return new Set();
  const found = await db.keysOutsideScope(
    entity,
    inserts.map((row) => keyOf(entity, row.row)),
    scope,
  );
  return new Set(found.map((stored) => encodeKey(canonicalColumns(entity, stored, entity.key))));
}

function record(context: RunContext, entity: AnyEntity, tally: EntityTally, outcome: Outcome) {
  const { plan, inserts, heldElsewhere, orphans, deletion } = outcome;
  for (const cascade of deletion.cascades)
    context.tally(cascade.entity).deleted += cascade.keys.length;
  tally.inserted += inserts.length;
  tally.updated += plan.updates.length;
  tally.deleted += deletion.deletable.length + plan.softDeletes.length;
  tally.unchanged += plan.unchanged + deletion.kept.length;
  tally.skipped += orphans.length + heldElsewhere.length;
  if (context.settings.listChanges) {
    const keys = (rows: readonly PreparedRow<Row>[]) =>
      rows.map((row) => describeKey(entity, row.row));
    for (const cascade of deletion.cascades) {
      const changes = context.tally(cascade.entity);
      changes.changes ??= { inserted: [], updated: [], deleted: [] };
      changes.changes.deleted.push(...cascade.keys.map((key) => formatKey(key)));
    }
    tally.changes ??= { inserted: [], updated: [], deleted: [] };
    tally.changes.inserted.push(...keys(inserts));
    tally.changes.updated.push(...keys(plan.updates));
    tally.changes.deleted.push(...keys(deletion.deletable), ...keys(plan.softDeletes));
  }

  const warn = (warning: SyncWarning) => {
    tally.warnings.push(warning);
    const { code, count, sampleKeys } = warning;
    context.logger.warn({ entity: entity.name, code, count, sampleKeys }, warning.message);
  };
  if (orphans.length > 0) {
    const parents = [...new Set(orphans.map((orphan) => orphan.missing.entity))].join(', ');
    warn({
      code: 'orphaned-rows',
      count: orphans.length,
      sampleKeys: orphans
        .slice(0, SAMPLE_KEYS)
        .map((orphan) => describeKey(entity, orphan.row.row)),
      message: `${entity.name}: skipped ${orphans.length} source row(s) whose ${parents} row is not in the target`,
    });
  }
  if (heldElsewhere.length > 0) {
    warn({
      code: 'held-by-other-tenant',
      count: heldElsewhere.length,
      sampleKeys: heldElsewhere.slice(0, SAMPLE_KEYS).map((row) => describeKey(entity, row.row)),
      message: `${entity.name}: skipped ${heldElsewhere.length} source row(s) whose key the target stores under another tenant; that tenant's next sync releases them`,
    });
  }
  if (deletion.kept.length > 0) {
    warn({
      code: 'kept-referenced-rows',
      count: deletion.kept.length,
      sampleKeys: deletion.kept.slice(0, SAMPLE_KEYS).map((row) => describeKey(entity, row.row)),
      message: `${entity.name}: kept ${deletion.kept.length} row(s) missing on the source because ${deletion.keptFor.join(', ')} rows outside this run's scope still reference them`,
    });
  }
}

function addAll(set: Set<string>, values: Iterable<string>) {
  for (const value of values) set.add(value);
}
