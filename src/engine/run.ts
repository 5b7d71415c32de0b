import type { SourceDatabase, SyncDatabase, TenantId } from '../db/types.js';
import type { AnyEntity } from '../entity/types.js';
import { LockedError } from '../errors.js';
import { RunContext, type RunSettings } from './context.js';
import { type EntityResult, resultToJSON, type SyncResult } from './result.js';
import { withRetries } from './retry.js';
import { settledLater } from './settle.js';
import { RunSource } from './snapshot.js';
import { syncEntity } from './sync-entity.js';

/** What one run needs: both sides, its settings, the entities, and how to lock. */
export interface RunInput<E extends AnyEntity> {
  readonly source: SourceDatabase;
  readonly target: SyncDatabase;
  readonly settings: RunSettings;
  readonly selected: readonly E[];
  readonly lock: boolean | 'wait' | undefined;
  readonly tenantId: TenantId | undefined;
}

/**
 * Runs the selected entities in dependency order on one target session, under the sync lock,
 * reading the source in one snapshot. Each entity is isolated: a failure is recorded in its
 * result and the next entity still runs.
 */
export async function runSync<E extends AnyEntity>(input: RunInput<E>): Promise<SyncResult<E>> {
  return input.target.session((db) => runLocked(input, db));
}

async function runLocked<E extends AnyEntity>(
  input: RunInput<E>,
  target: SyncDatabase,
): Promise<SyncResult<E>> {
  const { settings, selected } = input;
  const { logger, dryRun } = settings;
  // A dry run writes nothing, so it need not wait for (or fail on) a running sync.
  const lock = input.lock ?? !dryRun;
  const locking = lock !== false;
  const isTransient = (error: unknown) =>
    input.source.isTransient?.(error) === true || target.isTransient?.(error) === true;
  const held = (locking ? target.lock(lock === 'wait', { logger }) : Promise.resolve(true)).then(
    (taken) => {
      if (!taken)
        throw new LockedError(
          'another sync holds the sync lock on the target database; try again when it has finished',
        );
    },
  );
  // The source's connection is made while the lock is taken; its snapshot once it is held. A
  // failure to open is awaited below, after the lock's outcome.
  const opening = settledLater(
    withRetries(
      settings.retry,
      isTransient,
      () =>
        RunSource.open(input.source, {
          statementTimeoutMs: settings.statementTimeoutMs,
          tables: selected.flatMap((entity) =>
            entity.source.kind === 'table' ? [entity.source.table] : [],
          ),
          notBefore: held,
          tenantId: input.tenantId,
        }),
      {
        onRetry: ({ attempt, error, delayMs }) =>
          logger.warn(
            { attempt, attempts: settings.retry.attempts, delayMs, err: error },
            `opening the source snapshot failed with a transient error; trying again in ${delayMs} ms`,
          ),
      },
    ),
  );
  try {
    await held;
  } catch (error) {
    // Not locked: a source connection made meanwhile goes back.
    opening.then(({ value: source }) => source.close()).catch(() => undefined);
    throw error;
  }
  try {
    const startedAt = new Date();
    const { value: source } = await opening;
    logger.debug?.(
      {
        sourceFeatures: source.features,
        changeTracking:
          'unavailable' in source.changes
            ? { unavailable: source.changes.unavailable }
            : { origin: source.changes.origin, watermark: source.changes.watermark },
        targetFeatures: await target.features(),
        tenantId: printable(input.tenantId),
        dryRun,
      },
      'sync started',
    );
    const context = new RunContext(settings, source, target, isTransient);
    context.emit({
      type: 'run-start',
      entities: [...settings.selected],
      tenantId: input.tenantId,
      dryRun,
    });
    try {
      for (const entity of selected) await syncEntity(context, entity);
    } finally {
      await source.close();
    }

    const entities = Object.fromEntries(
      selected.map((entity) => [entity.name, context.tally(entity).toResult()]),
    ) as SyncResult<E>['entities'];
    const failed = Object.values<EntityResult>(entities).filter(
      (result) => result.status === 'failed',
    ).length;
    const finishedAt = new Date();
    logger.info(
      {
        ok: failed === 0,
        failed,
        entities: selected.length,
        ms: finishedAt.getTime() - startedAt.getTime(),
        dryRun,
      },
      failed === 0
        ? 'sync finished'
        : `sync finished with ${failed} failed entit${failed === 1 ? 'y' : 'ies'}`,
    );
    const result: SyncResult<E> = {
      ok: failed === 0,
      dryRun,
      tenantId: input.tenantId,
      startedAt,
      finishedAt,
      entities,
    };
    // JSON.stringify(result) works as it is: a bigint tenant becomes digits, errors keep their say.
    Object.defineProperty(result, 'toJSON', { value: () => resultToJSON(result) });
    context.emit({ type: 'run-end', result });
    return result;
  } finally {
    if (locking) await target.unlock().catch(() => undefined);
  }
}

const printable = (tenantId: TenantId | undefined) =>
  typeof tenantId === 'bigint' ? tenantId.toString() : tenantId;
