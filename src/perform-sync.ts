import { builtInEntities } from './builtins/index.js';
import type { PgPool } from './db/pg/pool.js';
import { createPgSource } from './db/pg/source.js';
import { createPgSyncDatabase } from './db/pg/sync-database.js';
import type { SyncDatabase, TenantId } from './db/types.js';
import type { RunSettings } from './engine/context.js';
import { DEFAULT_VERIFY_EVERY_MS } from './engine/detection.js';
import type { SyncEventListener } from './engine/events.js';
import type { SyncResult } from './engine/result.js';
import { runSync } from './engine/run.js';
import { createRegistry, type Registry } from './entity/registry.js';
import type { AnyEntity } from './entity/types.js';
import { ConfigurationError } from './errors.js';
import { type Logger, silentLogger } from './logger.js';

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
   * The sync lock on the target (a PostgreSQL advisory lock held for the run), so two syncs into
   * one database never overlap: `true` (default) rejects with `LockedError` when another sync
   * holds it, `'wait'` waits for it, `false` skips it. A dry run writes nothing and defaults to
   * `false`. Engines without advisory locks (pg-mem) have no lock.
   */
  readonly lock?: boolean | 'wait' | undefined;
  /** `statement_timeout` for every statement of the run, in milliseconds (PostgreSQL). */
  readonly statementTimeoutMs?: number | undefined;
  /** `lock_timeout` for every target statement: how long to wait for a lock, in ms (PostgreSQL). */
  readonly lockTimeoutMs?: number | undefined;
  /** Receives progress events: run start, entity start / progress / end, run end. */
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
}

/**
 * Brings the target in step with the source for every entity of the run, in dependency order.
 *
 * - The source is only read, in one `REPEATABLE READ READ ONLY` transaction: one snapshot for the
 *   whole run. A role with SELECT privilege is enough.
 * - Each entity's writes are one transaction on the target: it is applied whole or not at all.
 *   An entity that fails is reported (and logged) and the next one still runs.
 * - Tenant-scoped entities are read, compared and deleted only within `tenantId`.
 * - The run uses one connection on each side, and holds the sync lock on the target.
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
  };
  const target = isSyncDatabase(options.target)
    ? options.target
    : createPgSyncDatabase(options.target);
  return runSync({
    source: createPgSource(options.source),
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

function isRegistry<E extends AnyEntity>(value: Registry<E> | readonly E[]): value is Registry<E> {
  return !Array.isArray(value) && typeof (value as Registry<E>).select === 'function';
}

/** A `SyncDatabase` rather than a pool: it has the engine's write operations. */
export function isSyncDatabase(value: unknown): value is SyncDatabase {
  const candidate = value as Partial<SyncDatabase> | null;
  return typeof candidate?.transaction === 'function' && typeof candidate.write === 'function';
}
