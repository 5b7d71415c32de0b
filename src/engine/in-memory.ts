import type { z } from 'zod/v4';
import type { Scope, SyncDatabase, TableDescription } from '../db/types.js';
import { canonical, encodeKey } from '../diff/canonical.js';
import { planChanges, type SoftDelete } from '../diff/plan.js';
import {
  canonicalColumns,
  keyOf,
  type PreparedRow,
  prepareSourceRows,
  prepareTargetRows,
} from '../diff/rows.js';
import type { AnyEntity } from '../entity/types.js';
import type { DataError } from '../errors.js';
import type { RunContext } from './context.js';
import { characterLimits, invalidRows, keysOf, type Outcome, removeMissing } from './outcome.js';
import { splitOrphans } from './references.js';
import type { SyncWarning } from './result.js';

type Row = Record<string, unknown>;

/**
 * The portable path: reads both sides' rows in scope, parses them through the schema, and diffs
 * them in memory. Works on any engine (pg-mem included) and with any schema; memory grows with
 * the table. Runs inside the entity's target transaction.
 */
export async function syncInMemory(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  scope: Scope,
  description: TableDescription,
  warnings: readonly SyncWarning[],
): Promise<Outcome> {
  const rawRows = await context.source.read(entity, scope);
  context.emit({
    type: 'entity-progress',
    entity: entity.name,
    phase: 'reading',
    rows: rawRows.length,
  });
  const invalid: DataError[] = [];
  const sourceRows = prepareSourceRows(entity, rawRows, {
    tenant: entity.tenantColumn === undefined ? undefined : context.tenant,
    maxLengths: characterLimits(description),
    ...(entity.invalidRows === 'skip' ? { skip: (error: DataError) => invalid.push(error) } : {}),
  });

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
  const removal = await removeMissing(context, db, entity, scope, {
    hard: plan.deletes,
    soft: plan.softDeletes,
  });

  if (context.dryRun) {
    const added = context.projection(entity).added;
    for (const row of inserts) added.add(row.key);
  } else {
    await db.upsert(
      entity,
      [...inserts, ...plan.updates].map((row) => row.row),
      scope,
    );
    const written = inserts.length + plan.updates.length + removal.deleted.count;
    context.emit({ type: 'entity-progress', entity: entity.name, phase: 'writing', rows: written });
  }
  return {
    inserted: keysOf(context, entity, inserts, true),
    updated: keysOf(context, entity, plan.updates, true),
    deleted: removal.deleted,
    unchanged: plan.unchanged + removal.softUnchanged,
    orphans: {
      ...keysOf(
        context,
        entity,
        orphans.map((orphan) => orphan.row),
      ),
      parents: [...new Set(orphans.map((orphan) => orphan.missing.entity))],
    },
    heldElsewhere: keysOf(context, entity, heldElsewhere),
    invalid: invalidRows(invalid),
    kept: removal.kept,
    cascades: removal.cascades,
    warnings,
  };
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
