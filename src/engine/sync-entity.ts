import type { AnyEntity } from '../entity/types.js';
import { MeterSyncError } from '../errors.js';
import type { RunContext } from './context.js';
import { type Outcome, recordOutcome } from './outcome.js';
import { syncEntityRows } from './pipeline.js';

/**
 * Syncs one entity in ONE target transaction through the pipeline. Any failure rolls the
 * transaction back and is recorded; it never escapes, so the next entity still runs. Counts
 * are taken only once the transaction committed.
 */
export async function syncEntity(context: RunContext, entity: AnyEntity): Promise<void> {
  const tally = context.tally(entity);
  const started = performance.now();
  context.emit({ type: 'entity-start', entity: entity.name });
  const { statementTimeoutMs, lockTimeoutMs } = context.settings;
  let outcome: Outcome;
  try {
    outcome = await context.target.transaction((db) => syncEntityRows(context, db, entity), {
      statementTimeoutMs,
      lockTimeoutMs,
    });
  } catch (error) {
    tally.durationMs = performance.now() - started;
    tally.error =
      error instanceof MeterSyncError
        ? error
        : new MeterSyncError(
            `${entity.name}: ${error instanceof Error ? error.message : String(error)}`,
            { entity: entity.name, cause: error },
          );
    context.logger.error(
      { entity: entity.name, err: tally.error },
      'entity failed; its changes were rolled back',
    );
    context.emit({ type: 'entity-end', entity: entity.name, result: tally.toResult() });
    return;
  }
  // Committed: what follows only reports it, and must not be able to call it failed.
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
      detection: tally.detection?.mode,
      reason: tally.detection?.reason,
    },
    context.dryRun ? 'entity planned' : 'entity synced',
  );
  context.emit({ type: 'entity-end', entity: entity.name, result: tally.toResult() });
}
