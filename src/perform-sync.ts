import { builtInEntities } from './builtins/index.js';
import type { PgPool } from './db/pg/pool.js';
import { createPgSource } from './db/pg/source.js';
import { createPgSyncDatabase } from './db/pg/sync-database.js';
import { isTransientError } from './db/pg/transient.js';
import type { SyncDatabase, TenantId } from './db/types.js';
import type { RunSettings } from './engine/context.js';
import { DEFAULT_VERIFY_EVERY_MS } from './engine/detection.js';
import type { SyncEventListener } from './engine/events.js';
import type { SyncResult } from './engine/result.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, retryPolicy } from './engine/retry.js';
import { runSync } from './engine/run.js';
import { createRegistry, type Registry } from './entity/registry.js';
import type { AnyEntity } from './entity/types.js';
import { ConfigurationError, messageOf } from './errors.js';
import { type Logger, silentLogger } from './logger.js';

/**
 * How an entity that failed for a passing reason is tried again (the `retry` option). Each
 * field left out takes its default.
 */
export interface SyncRetryOptions {
  /** Attempts per entity in all, the first included (a whole number ≥ 1). Default 3. */
  readonly attempts?: number | undefined;
  /**
   * Ceiling of the delay before the first retry, in ms; it doubles with each retry. Each delay is
   * drawn at random between 0 and its ceiling (full jitter), so agents that failed together do
   * not retry together. Default 200.
   */
  readonly initialDelayMs?: number | undefined;
  /** Ceiling of any one delay, in ms. Default 5000. */
  readonly maxDelayMs?: number | undefined;
  /**
   * Time from an entity's first attempt after which no retry starts, in ms (an attempt running
   * is not cut short). Default 60000.
   */
  readonly deadlineMs?: number | undefined;
}

/** What `performSync` takes. */
export interface PerformSyncOptions<E extends AnyEntity = AnyEntity> {
  /** The source (Client System): a pg-compatible pool. Only read, in one read-only snapshot. */
  readonly source: PgPool;
  /** The sync database: a pg-compatible pool, or any `SyncDatabase`. */
  readonly target: PgPool | SyncDatabase;
  /** The tenant to sync. Required when any entity in the run is tenant-scoped. */
  readonly tenantId?: TenantId | undefined;
  /** The definitions: a registry or a list. Default: `builtInEntities`. */
  readonly entities?: Registry<E> | readonly E[] | undefined;
  /** Sync only these entities (by name); the others still inform references. Default: all. */
  readonly only?: readonly E['name'][] | undefined;
  /** Where to log; pino-style. Default: silent. */
  readonly logger?: Logger | undefined;
  /** Compute the same counts and warnings, write nothing. */
  readonly dryRun?: boolean | undefined;
  /** Put the keys of every change into the results (`changes`). Default: false. */
  readonly listChanges?: boolean | undefined;
  /**
   * The sync lock on the target (a lease row in `meter_sync_lock` held for the run, which holds
   * through PgBouncer in transaction pooling), so two syncs into one database never overlap:
   * `true` (default) rejects with `LockedError` naming the holder when another sync holds it,
   * `'wait'` waits for it, `false` skips it. A dry run writes nothing and defaults to
   * `false`. Engines without advisory locks (pg-mem) have no lock.
   */
  readonly lock?: boolean | 'wait' | undefined;
  /** `statement_timeout` for every statement of the run, in milliseconds (PostgreSQL). */
  readonly statementTimeoutMs?: number | undefined;
  /** `lock_timeout` for every target statement: how long to wait for a lock, in ms (PostgreSQL). */
  readonly lockTimeoutMs?: number | undefined;
  /** Receives progress events: run start, entity start / progress / retry / end, run end. */
  readonly onEvent?: SyncEventListener | undefined;
  /**
   * Incremental detection (default on): an entity read from a table on PostgreSQL 13+ reads only
   * the rows changed since its last sync (by `xmin`, with SELECT alone), and finds deleted rows
   * by counting. Where a watermark cannot be trusted, and every `verifyEveryMs` (default a day),
   * every row is compared instead. `false` always compares every row.
   */
  readonly incremental?: boolean | { readonly verifyEveryMs?: number | undefined } | undefined;
  /** Compare every row of every entity in this run, whatever the watermarks say. */
  readonly full?: boolean | undefined;
  /**
   * Retries of an entity whose attempt failed for a passing reason: a lost or refused
   * connection, a server shutting down or starting up, a serialization failure or deadlock, a
   * recovery conflict on a hot standby, PgBouncer's pool timeouts. The attempt's transaction is
   * rolled back first, and a new source snapshot is read when the failure came from the old one.
   * Anything else (syntax, privileges, a missing table, bad data, a statement or lock timeout)
   * fails the entity at once. `false`: one attempt. Default: 3 attempts, delays up to 200 ms,
   * 400 ms, … (capped at 5 s), none starting 60 s after the first attempt.
   */
  readonly retry?: SyncRetryOptions | false | undefined;
}

/**
 * Brings the target in step with the source for every entity of the run, in dependency order.
 *
 * - The source is only read, in one `REPEATABLE READ READ ONLY` transaction: one snapshot for the
 *   whole run. A role with SELECT privilege is enough.
 * - Each entity's writes are one transaction on the target: it is applied whole or not at all.
 *   An entity that fails is reported (and logged) and the next one still runs.
 * - Tenant-scoped entities are read, compared and deleted only within `tenantId`.
 * - The run uses one connection on each side (a new one after a connection is lost, and a
 *   pooled one now and then to renew the sync lock), and holds the sync lock on the target.
 * - An entity whose attempt fails for a passing reason is rolled back and tried again (`retry`),
 *   on a new source snapshot when the source failed.
 *
 * Rejects, before any I/O, a run with invalid options (e.g. tenant-scoped entities but no
 * `tenantId`); rejects when the source or the target cannot be reached, or (`LockedError`) when
 * another sync holds the lock. Otherwise resolves with per-entity results; `ok` is false when
 * any entity failed.
 *
 * @example
 * ```ts
 * const result = await performSync({ source: remotePool, target: localPool, tenantId: 42 });
 * if (!result.ok) console.error(result.entities);
 * ```
 */
export async function performSync<
  E extends AnyEntity = (typeof builtInEntities)[number],
  const Only extends E['name'] = E['name'],
>(
  options: PerformSyncOptions<E> & { readonly only?: readonly Only[] | undefined },
): Promise<SyncResult<Extract<E, { readonly name: Only }>>> {
  const { registry, selected } = resolveEntities(options);
  const settings: RunSettings = {
    registry,
    selected: new Set(selected.map((entity) => entity.name)),
    scope: { tenantId: options.tenantId },
    logger: options.logger ?? silentLogger,
    dryRun: options.dryRun ?? false,
    listChanges: options.listChanges ?? false,
    statementTimeoutMs: options.statementTimeoutMs,
    lockTimeoutMs: options.lockTimeoutMs,
    onEvent: options.onEvent,
    detection: {
      incremental: options.incremental !== false,
      verifyEveryMs:
        (typeof options.incremental === 'object' ? options.incremental.verifyEveryMs : undefined) ??
        DEFAULT_VERIFY_EVERY_MS,
      full: options.full ?? false,
    },
    retry: retryPolicyOf(options),
  };
  const target = isSyncDatabase(options.target)
    ? options.target
    : createPgSyncDatabase(options.target);
  return runSync({
    source: { ...createPgSource(options.source), isTransient: isTransientError },
    target,
    settings,
    selected,
    lock: options.lock,
    tenantId: options.tenantId,
  });
}

/**
 * Validates the options that need no I/O and picks the entities to run: what `performSync`
 * rejects before touching a database. Throws `ConfigurationError` or `DefinitionError`.
 */
export function resolveEntities<E extends AnyEntity>(
  options: PerformSyncOptions<E>,
  caller = 'performSync',
): { registry: Registry<E>; selected: readonly E[] } {
  const fail = (message: string): never => {
    throw new ConfigurationError(message);
  };
  if (typeof options?.source?.connect !== 'function')
    fail(`${caller}: source must be a pg-compatible pool (with connect())`);
  if (
    !isSyncDatabase(options.target) &&
    typeof (options.target as PgPool)?.connect !== 'function'
  ) {
    fail(`${caller}: target must be a pg-compatible pool or a SyncDatabase`);
  }
  const { tenantId } = options;
  if (tenantId !== undefined && !['string', 'number', 'bigint'].includes(typeof tenantId)) {
    fail(`${caller}: tenantId must be a string, number or bigint, got ${typeof tenantId}`);
  }
  retryPolicyOf(options, caller);
  const given = options.entities ?? (builtInEntities as unknown as readonly E[]);
  const registry = isRegistry(given) ? given : createRegistry(given);
  const selected = options.only === undefined ? registry.entities : registry.select(options.only);
  const scoped = selected
    .filter((entity) => entity.tenantColumn !== undefined)
    .map((entity) => entity.name);
  if (tenantId === undefined && scoped.length > 0) {
    fail(
      `${caller}: tenantId is required: ${scoped.join(', ')} ${scoped.length > 1 ? 'are' : 'is'} tenant-scoped`,
    );
  }
  return { registry, selected };
}

/** The retry policy the options ask for; `ConfigurationError` when a number is out of range. */
function retryPolicyOf(
  options: PerformSyncOptions<AnyEntity>,
  caller = 'performSync',
): RetryPolicy {
  const { retry } = options;
  if (retry === false) return retryPolicy({ attempts: 1 });
  if (retry === undefined) return DEFAULT_RETRY_POLICY;
  if (typeof retry !== 'object' || retry === null) {
    throw new ConfigurationError(`${caller}: retry must be an object or false`);
  }
  const given: Partial<RetryPolicy> = Object.fromEntries(
    (['attempts', 'initialDelayMs', 'maxDelayMs', 'deadlineMs'] as const)
      .filter((name) => retry[name] !== undefined)
      .map((name) => [name, retry[name]]),
  );
  try {
    return retryPolicy(given);
  } catch (error) {
    throw new ConfigurationError(`${caller}: ${messageOf(error)}`, { cause: error });
  }
}

function isRegistry<E extends AnyEntity>(value: Registry<E> | readonly E[]): value is Registry<E> {
  return !Array.isArray(value) && typeof (value as Registry<E>).select === 'function';
}

/** A `SyncDatabase` rather than a pool: it has the engine's write operations. */
export function isSyncDatabase(value: unknown): value is SyncDatabase {
  const candidate = value as Partial<SyncDatabase> | null;
  return typeof candidate?.transaction === 'function' && typeof candidate.write === 'function';
}
