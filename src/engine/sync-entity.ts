import type { AnyEntity } from '../entity/types.js';
import { MeterSyncError, messageOf } from '../errors.js';
import type { RunContext } from './context.js';
import { sourceIdentities } from './detection.js';
import { type Outcome, recordOutcome } from './outcome.js';
import { syncEntityRows } from './pipeline.js';
import type { FailedAttempt } from './result.js';
import { withRetries } from './retry.js';
import { settledLater } from './settle.js';

/**
 * Syncs one entity in ONE target transaction through the pipeline. Any failure rolls the
 * transaction back; a transient one (see `RunContext.isTransient`) is tried again in a new
 * transaction, as the run's retry policy allows, reading a new source snapshot when the old one
 * failed. The last failure is recorded and never escapes, so the next entity still runs.
 * Counts are taken only once a transaction committed: a retried entity is never half-applied.
 */
export async function syncEntity(context: RunContext, entity: AnyEntity): Promise<void> {
  const tally = context.tally(entity);
  const started = performance.now();
  context.emit({ type: 'entity-start', entity: entity.name });
  const { statementTimeoutMs, lockTimeoutMs, retry } = context.settings;
  let outcome: Outcome;
  try {
    const done = await withRetries(
      retry,
      context.isTransient,
      async (attempt) => {
        const mark = context.projectionMark();
        let identities: Promise<readonly (string | undefined)[]> | undefined;
        try {
          await renewSourceIfBroken(context, retry.attempts > 1);
          // The source's tables are looked up while the target's transaction begins.
          const read = settledLater(sourceIdentities(context, entity));
          identities = read;
          return await context.target.transaction(
            (db) => syncEntityRows(context, db, entity, read),
            { entity: entity.name, statementTimeoutMs, lockTimeoutMs },
          );
        } catch (error) {
          // Nothing else goes to the source before that lookup is over.
          await identities?.catch(() => undefined);
          context.rewindProjections(mark);
          const failure = asEntityError(entity, error);
          tally.failedAttempts.push(failedAttempt(attempt, failure, context));
          throw failure;
        }
      },
      {
        onRetry: ({ attempt, error, delayMs }) => {
          const failure = error as MeterSyncError;
          const failed = tally.failedAttempts[tally.failedAttempts.length - 1] as FailedAttempt;
          const newSnapshot = context.source.failedWith !== undefined;
          context.logger.warn(
            {
              entity: entity.name,
              attempt,
              attempts: retry.attempts,
              code: failed.code,
              delayMs,
              newSnapshot,
              err: failure,
            },
            `entity failed with a transient error; trying again in ${delayMs} ms`,
          );
          context.emit({
            type: 'entity-retry',
            entity: entity.name,
            failed,
            error: failure,
            delayMs,
            nextAttempt: attempt + 1,
            newSnapshot,
          });
        },
      },
    );
    outcome = done.value;
    tally.attempts = done.attempts;
  } catch (error) {
    tally.durationMs = performance.now() - started;
    tally.attempts = Math.max(1, tally.failedAttempts.length);
    tally.error = asEntityError(entity, error);
    context.logger.error(
      { entity: entity.name, err: tally.error, attempts: tally.attempts },
      tally.attempts > 1
        ? `entity failed after ${tally.attempts} attempts; its changes were rolled back`
        : 'entity failed; its changes were rolled back',
    );
    context.emit({ type: 'entity-end', entity: entity.name, result: tally.toResult() });
    return;
  }
  // Committed: what follows only reports it, and must not be able to call it failed.
  recordOutcome(context, entity, tally, outcome);
  tally.durationMs = performance.now() - started;
  const { inserted, updated, deleted, skipped, unchanged, attempts } = tally;
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
      ...(attempts > 1 ? { attempts } : {}),
    },
    context.dryRun ? 'entity planned' : 'entity synced',
  );
  context.emit({ type: 'entity-end', entity: entity.name, result: tally.toResult() });
}

/**
 * Before an attempt that may be retried: a snapshot a read failed on for a passing reason (in
 * this entity's previous attempt, or in an earlier entity that gave up) is replaced by a new
 * one. Without retries the run keeps its one snapshot, and reports later entities as not read.
 */
async function renewSourceIfBroken(context: RunContext, retrying: boolean): Promise<void> {
  const failure = context.source.failedWith;
  if (!retrying || failure === undefined || !context.isTransient(failure.error)) return;
  context.logger.debug?.({}, 'opening a new source snapshot');
  await context.source.replace();
}

function asEntityError(entity: AnyEntity, error: unknown): MeterSyncError {
  return error instanceof MeterSyncError
    ? error
    : new MeterSyncError(`${entity.name}: ${messageOf(error)}`, {
        entity: entity.name,
        cause: error,
      });
}

function failedAttempt(attempt: number, error: MeterSyncError, context: RunContext): FailedAttempt {
  const code = codeOf(error);
  return {
    attempt,
    message: error.message,
    ...(code === undefined ? {} : { code }),
    transient: context.isTransient(error),
  };
}

/** The first SQLSTATE or errno code along the error's causes. */
function codeOf(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let current = error; typeof current === 'object' && current !== null; ) {
    if (seen.has(current)) return undefined;
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
