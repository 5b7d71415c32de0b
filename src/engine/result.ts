import type { TenantId } from '../db/types.js';
import type { AnyEntity, KeyOf } from '../entity/types.js';
import {
  type JsonValue,
  MeterSyncError,
  type MeterSyncErrorJSON,
  messageOf,
  toJsonValue,
} from '../errors.js';
import type { DetectionReport } from './detection.js';

/**
 * A row's key: its key columns and their values as the entity's schema gives them,
 * `{ register_id: 5n }` or `{ meter_id: 1, meter_element_id: 2 }`.
 */
export type ChangeKey = { readonly [column: string]: unknown };

/** The key type of an entity's results: `KeyOf<E>`, read-only. */
export type ResultKey<E extends AnyEntity> = string extends E['key'][number]
  ? ChangeKey
  : Readonly<KeyOf<E>>;

interface WarningOf<Code extends string, Key> {
  readonly code: Code;
  readonly message: string;
  /** How many rows it concerns. */
  readonly count: number;
  /** A few of their keys (five at most); `formatKey` prints one as `(column=value, …)`. */
  readonly sampleKeys: readonly Key[];
}

/**
 * A condition worth attention that did not fail the entity; reported once per kind per entity.
 *
 * - `orphaned-rows`: source rows skipped because a referenced parent row is not in the target.
 * - `held-by-other-tenant`: source rows skipped because their key is stored under another tenant.
 * - `kept-referenced-rows`: rows not deleted because rows outside this run's scope still reference them.
 * - `invalid-rows`: source rows that broke the definition were skipped (`invalidRows: 'skip'`).
 *   Their keys hold the source's text (or `null`) where the schema refuses the value.
 */
export type SyncWarning<Key extends ChangeKey = ChangeKey> =
  | WarningOf<'orphaned-rows' | 'held-by-other-tenant' | 'kept-referenced-rows', Key>
  | WarningOf<'invalid-rows', { readonly [C in keyof Key]: unknown }>;

/** The keys an entity's sync changed (or would change, in a dry run): every one of them. */
export interface EntityChanges<Key extends ChangeKey = ChangeKey> {
  readonly inserted: readonly Key[];
  readonly updated: readonly Key[];
  /** Deleted or soft-deleted, including rows deleted with a deleted parent. */
  readonly deleted: readonly Key[];
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

/** What one entity's sync did. `Key` is the entity's key type (`KeyOf<E>`). */
export interface EntityResult<Key extends ChangeKey = ChangeKey> {
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
  readonly warnings: readonly SyncWarning<Key>[];
  /** Why the entity failed; its changes were rolled back. */
  readonly error?: MeterSyncError;
  /** The key of every change, when the run was asked to list them (`listChanges`). */
  readonly changes?: EntityChanges<Key>;
  /** Wall time spent on this entity, every attempt and the delays between them included. */
  readonly durationMs: number;
  /**
   * How the changed rows were found, and why: `incremental` read only the rows the source changed
   * since the last sync; `full` compared every row. Absent when the entity failed before choosing.
   */
  readonly detection?: DetectionReport;
  /**
   * Attempts made, the last included: 1, unless a transient failure (a lost connection, a
   * recovery conflict, a serialization failure) was tried again. See `retry` of `performSync`.
   */
  readonly attempts: number;
  /** The attempts that failed, in order: empty when the first attempt succeeded. */
  readonly failedAttempts: readonly FailedAttempt[];
}

/**
 * What a whole run did. `E` is the entities that ran: with `performSync({ only: ['register'] })`,
 * `entities` has `register` alone, its keys typed `{ readonly register_id: bigint }`.
 */
export interface SyncResult<E extends AnyEntity = AnyEntity> {
  /** `false` when any entity failed. */
  readonly ok: boolean;
  readonly dryRun: boolean;
  readonly tenantId: TenantId | undefined;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  /** One result per entity that ran, in the order they ran. */
  readonly entities: { readonly [Each in E as Each['name']]: EntityResult<ResultKey<Each>> };
}

/** A key value as JSON has it: bigints and dates as strings. */
type JsonOf<Value> = Value extends bigint | Date
  ? string
  : Value extends string | number | boolean | null
    ? Value
    : JsonValue;

/** A key as JSON data: bigints as decimal strings, dates as ISO strings. */
export type KeyJSON<Key extends ChangeKey> = { readonly [C in keyof Key]: JsonOf<Key[C]> };

/** An {@link EntityResult} as JSON data, from {@link resultToJSON}. */
export type EntityResultJSON<Key extends ChangeKey = ChangeKey> = Omit<
  EntityResult<Key>,
  'error' | 'warnings' | 'changes'
> & {
  readonly warnings: readonly SyncWarning<KeyJSON<Key>>[];
  readonly changes?: EntityChanges<KeyJSON<Key>>;
  /** Why the entity failed: the error's `toJSON()`. */
  readonly error?: MeterSyncErrorJSON;
};

/** A {@link SyncResult} as JSON data, from {@link resultToJSON}. */
export interface SyncResultJSON<E extends AnyEntity = AnyEntity> {
  readonly ok: boolean;
  readonly dryRun: boolean;
  /** The tenant; a bigint tenant id as a decimal string. */
  readonly tenantId: string | number | undefined;
  /** ISO 8601, UTC. */
  readonly startedAt: string;
  /** ISO 8601, UTC. */
  readonly finishedAt: string;
  readonly entities: {
    readonly [Each in E as Each['name']]: EntityResultJSON<ResultKey<Each>>;
  };
}

/**
 * A sync result as JSON data, ready for `JSON.stringify`, a log line or a message queue:
 * bigints (a bigint tenant id, key values in changes, warnings and errors) become decimal
 * strings, dates ISO
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
export function resultToJSON<E extends AnyEntity>(result: SyncResult<E>): SyncResultJSON<E> {
  const entities: Record<string, EntityResultJSON> = {};
  for (const [name, entity] of Object.entries<EntityResult>(result.entities)) {
    entities[name] = entityResultToJSON(entity);
  }
  return {
    ok: result.ok,
    dryRun: result.dryRun,
    tenantId: typeof result.tenantId === 'bigint' ? result.tenantId.toString() : result.tenantId,
    startedAt: result.startedAt.toISOString(),
    finishedAt: result.finishedAt.toISOString(),
    entities: entities as SyncResultJSON<E>['entities'],
  };
}

function entityResultToJSON(entity: EntityResult): EntityResultJSON {
  const { error, warnings, changes, ...counts } = entity;
  const rest: EntityResultJSON = {
    ...counts,
    warnings: warnings.map((warning) => ({
      ...warning,
      sampleKeys: warning.sampleKeys.map(keyToJSON),
    })),
    ...(changes
      ? {
          changes: {
            inserted: changes.inserted.map(keyToJSON),
            updated: changes.updated.map(keyToJSON),
            deleted: changes.deleted.map(keyToJSON),
          },
        }
      : {}),
  };
  if (error === undefined) return rest;
  // Typed as a MeterSyncError, but JSON must not depend on it.
  const json: MeterSyncErrorJSON =
    error instanceof MeterSyncError
      ? error.toJSON()
      : { name: (error as Partial<Error>)?.name ?? 'Error', message: messageOf(error) };
  return { ...rest, error: json };
}

const keyToJSON = (key: ChangeKey) => toJsonValue(key) as KeyJSON<ChangeKey>;

/**
 * A key as `(column=value, …)`, as the CLI and log lines print it: numbers bare, text quoted,
 * dates as ISO strings.
 *
 * @example
 * ```ts
 * formatKey({ device_id: 1n, register_id: 203n }); // '(device_id=1, register_id=203)'
 * ```
 */
export function formatKey(key: ChangeKey): string {
  const pairs = Object.entries(key).map(([column, value]) => `${column}=${keyValueText(value)}`);
  return `(${pairs.join(', ')})`;
}

function keyValueText(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'bigint' || typeof value === 'number') return String(value);
  const json = toJsonValue(value);
  // Numeric text (a numeric key read as a string) reads as the number it is.
  if (typeof json === 'string' && /^-?\d+(\.\d+)?$/.test(json)) return json;
  return JSON.stringify(json);
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
  detection: DetectionReport | undefined;
  attempts = 1;
  readonly failedAttempts: FailedAttempt[] = [];
  /** Filled only when the run lists changes. */
  changes: { inserted: ChangeKey[]; updated: ChangeKey[]; deleted: ChangeKey[] } | undefined;

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
      ...(this.detection ? { detection: this.detection } : {}),
      attempts,
      failedAttempts: [...this.failedAttempts],
      ...(this.changes ? { changes: this.changes } : {}),
    };
    return this.error
      ? { status: 'failed', ...base, error: this.error }
      : { status: 'ok', ...base };
  }
}
