import type { TenantId } from '../db/types.js';
import { MeterSyncError, type MeterSyncErrorJSON, messageOf } from '../errors.js';

/** A condition worth attention that did not fail the entity; reported once per kind per entity. */
export interface SyncWarning {
  /**
   * `orphaned-rows`: source rows skipped because a referenced parent row is not in the target.
   * `held-by-other-tenant`: source rows skipped because their key is stored under another tenant.
   * `kept-referenced-rows`: rows not deleted because rows outside this run's scope still reference them.
   * `invalid-rows`: source rows that broke the definition were skipped (`invalidRows: 'skip'`).
   */
  readonly code: 'orphaned-rows' | 'held-by-other-tenant' | 'kept-referenced-rows' | 'invalid-rows';
  readonly message: string;
  /** How many rows it concerns. */
  readonly count: number;
  /** A few of their keys, as `(column=value, …)`. */
  readonly sampleKeys: readonly string[];
}

/** The keys an entity's sync changed (or would change, in a dry run). */
export interface EntityChanges {
  readonly inserted: readonly string[];
  readonly updated: readonly string[];
  readonly deleted: readonly string[];
}

/** An attempt at an entity that failed: retried when `transient`, else the entity's last. */
export interface FailedAttempt {
  /** Counted from 1. */
  readonly attempt: number;
  /** The error's message, naming the entity and what was being done. */
  readonly message: string;
  /** The SQLSTATE, or the network's error code (`ECONNRESET`…), when there is one. */
  readonly code?: string;
  /** Whether the error was judged to pass by itself, so that trying again could succeed. */
  readonly transient: boolean;
}

/** What one entity's sync did. */
export interface EntityResult {
  readonly status: 'ok' | 'failed';
  /** Rows inserted into the target (would be, with `dryRun`). */
  readonly inserted: number;
  /** Rows updated in the target. */
  readonly updated: number;
  /** Rows deleted (or soft-deleted) in the target, including those removed with a deleted parent. */
  readonly deleted: number;
  /** Source rows not applied: orphans, keys held by another tenant. */
  readonly skipped: number;
  /** Source rows compared and found equal: not written. */
  readonly unchanged: number;
  readonly warnings: readonly SyncWarning[];
  /** Why the entity failed; its changes were rolled back. */
  readonly error?: MeterSyncError;
  /** The keys of the changes, as `(column=value, …)`, when the run was asked to list them. */
  readonly changes?: EntityChanges;
  /** Wall time spent on this entity, every attempt and the delays between them included. */
  readonly durationMs: number;
  /**
   * Attempts made, the last included: 1, unless a transient failure (a lost connection, a
   * recovery conflict, a serialization failure) was tried again. See `retry` of `performSync`.
   */
  readonly attempts: number;
  /** The attempts that failed, in order: empty when the first attempt succeeded. */
  readonly failedAttempts: readonly FailedAttempt[];
}

/**
 * What a whole run did. `Name` is the names of the entities that ran: with
 * `performSync({ only: ['register'] })`, `entities` has `register` alone.
 */
export interface SyncResult<Name extends string = string> {
  /** `false` when any entity failed. */
  readonly ok: boolean;
  readonly dryRun: boolean;
  readonly tenantId: TenantId | undefined;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  /** One result per entity that ran, in the order they ran. */
  readonly entities: { readonly [N in Name]: EntityResult };
}

/** An {@link EntityResult} as JSON data, from {@link resultToJSON}. */
export type EntityResultJSON = Omit<EntityResult, 'error'> & {
  /** Why the entity failed: the error's `toJSON()`. */
  readonly error?: MeterSyncErrorJSON;
};

/** A {@link SyncResult} as JSON data, from {@link resultToJSON}. */
export interface SyncResultJSON<Name extends string = string> {
  readonly ok: boolean;
  readonly dryRun: boolean;
  /** The tenant; a bigint tenant id as a decimal string. */
  readonly tenantId: string | number | undefined;
  /** ISO 8601, UTC. */
  readonly startedAt: string;
  /** ISO 8601, UTC. */
  readonly finishedAt: string;
  readonly entities: { readonly [N in Name]: EntityResultJSON };
}

/**
 * A sync result as JSON data, ready for `JSON.stringify`, a log line or a message queue:
 * bigints (a bigint tenant id, bigint key values in errors) become decimal strings, dates ISO
 * strings, and each failed entity's error its name, message, entity, key, column, SQLSTATE
 * `code` and the message of its cause. `JSON.stringify(result)` of the result itself throws on
 * a bigint tenant id, as it does on any bigint.
 *
 * @example
 * ```ts
 * const result = await performSync({ source, target, tenantId: 42n });
 * console.log(JSON.stringify(resultToJSON(result)));
 * // {"ok":true,"dryRun":false,"tenantId":"42","startedAt":"2024-05-01T10:00:00.000Z",…}
 * ```
 */
export function resultToJSON<Name extends string>(result: SyncResult<Name>): SyncResultJSON<Name> {
  const entities = {} as { [N in Name]: EntityResultJSON };
  for (const name of Object.keys(result.entities) as Name[]) {
    entities[name] = entityResultToJSON(result.entities[name]);
  }
  return {
    ok: result.ok,
    dryRun: result.dryRun,
    tenantId: typeof result.tenantId === 'bigint' ? result.tenantId.toString() : result.tenantId,
    startedAt: result.startedAt.toISOString(),
    finishedAt: result.finishedAt.toISOString(),
    entities,
  };
}

function entityResultToJSON(entity: EntityResult): EntityResultJSON {
  const { error, ...rest } = entity;
  if (error === undefined) return rest;
  // Typed as a MeterSyncError, but JSON must not depend on it.
  const json: MeterSyncErrorJSON =
    error instanceof MeterSyncError
      ? error.toJSON()
      : { name: (error as Partial<Error>)?.name ?? 'Error', message: messageOf(error) };
  return { ...rest, error: json };
}

/** Counts of one entity, filled in as the run goes. */
export class EntityTally {
  inserted = 0;
  updated = 0;
  deleted = 0;
  skipped = 0;
  unchanged = 0;
  readonly warnings: SyncWarning[] = [];
  error: MeterSyncError | undefined;
  durationMs = 0;
  attempts = 1;
  readonly failedAttempts: FailedAttempt[] = [];
  /** Filled only when the run lists changes. */
  changes: { inserted: string[]; updated: string[]; deleted: string[] } | undefined;

  toResult(): EntityResult {
    const { inserted, updated, deleted, skipped, unchanged, durationMs, attempts } = this;
    const base = {
      inserted,
      updated,
      deleted,
      skipped,
      unchanged,
      warnings: [...this.warnings],
      durationMs,
      attempts,
      failedAttempts: [...this.failedAttempts],
      ...(this.changes ? { changes: this.changes } : {}),
    };
    return this.error
      ? { status: 'failed', ...base, error: this.error }
      : { status: 'ok', ...base };
  }
}
