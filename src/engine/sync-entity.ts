import type { PgSyncDatabase } from '../db/pg/sync-database.js';
import type { SyncDatabase } from '../db/types.js';
import type { AnyEntity } from '../entity/types.js';
import { MeterSyncError, SchemaError } from '../errors.js';
import type { RunContext } from './context.js';
import { syncInMemory } from './in-memory.js';
import { type Outcome, recordOutcome } from './outcome.js';
import { chooseSetBased, syncSetBased } from './set-based.js';

/**
 * Syncs one entity in ONE target transaction: checks the target table, then takes the set-based
 * path (PostgreSQL on both sides) or the in-memory one, which read the source snapshot, compare,
 * remove orphans, delete (children first), soft-delete and upsert. Any failure rolls the
 * transaction back and is recorded; it never escapes, so the next entity still runs.
 */
export async function syncEntity(context: RunContext, entity: AnyEntity): Promise<void> {
  const tally = context.tally(entity);
  const started = performance.now();
  const scope = context.scopeOf(entity);
  context.emit({ type: 'entity-start', entity: entity.name });
  try {
    const { statementTimeoutMs, lockTimeoutMs } = context.settings;
    const outcome = await context.target.transaction(
      async (db): Promise<Outcome> => {
        const description = await checkTargetTable(db, entity);
        const choice = isPg(db)
          ? await chooseSetBased(context, entity, db, description)
          : ({ use: false, reason: 'the target is a custom SyncDatabase' } as const);
        context.logger.debug?.(
          {
            entity: entity.name,
            path: choice.use ? 'set-based' : 'in-memory',
            ...(choice.use ? {} : { reason: choice.reason }),
          },
          'entity path chosen',
        );
        if (choice.use && isPg(db))
          return syncSetBased(context, db, entity, scope, choice.shape, []);
        return syncInMemory(
          context,
          db,
          entity,
          scope,
          description,
          choice.use || !choice.warning ? [] : [choice.warning],
        );
      },
      { statementTimeoutMs, lockTimeoutMs },
    );
    recordOutcome(context, entity, tally, outcome);
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

function isPg(db: SyncDatabase): db is PgSyncDatabase {
  return typeof (db as Partial<PgSyncDatabase>).connection === 'function';
}

/** Fails before any write when the target table or one of the synced columns is missing. */
async function checkTargetTable(db: SyncDatabase, entity: AnyEntity) {
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
    const them = missing.length > 1 ? 'them' : 'it';
    throw new SchemaError(
      `${entity.name}: column${missing.length > 1 ? 's' : ''} ${missing.map((c: string) => `"${c}"`).join(', ')} missing on the target table "${table}" (add ${them} or remove ${them} from the definition)`,
      { entity: entity.name, column: missing[0] },
    );
  }
  return description;
}
