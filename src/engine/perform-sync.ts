import { builtInEntities } from '../builtins/index.js';
import type { PgPool } from '../db/pg/pool.js';
import { openSourceSnapshot } from '../db/pg/source.js';
import { createPgSyncDatabase } from '../db/pg/sync-database.js';
import type { SyncDatabase, TenantId } from '../db/types.js';
import { createRegistry, type Registry } from '../entity/registry.js';
import type { AnyEntity } from '../entity/types.js';
import { ConfigurationError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { RunContext } from './context.js';
import type { EntityResult, SyncResult } from './result.js';
import { syncEntity } from './sync-entity.js';

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
}

/**
 * Brings the target in step with the source for every entity of the run, in dependency order.
 *
 * - The source is only read, in one `REPEATABLE READ READ ONLY` transaction: one snapshot for the
 *   whole run. A role with SELECT privilege is enough.
 * - Each entity's writes are one transaction on the target: it is applied whole or not at all.
 *   An entity that fails is reported (and logged) and the next one still runs.
 * - Tenant-scoped entities are read, compared and deleted only within `tenantId`.
 *
 * Rejects, before any I/O, a run with invalid options (e.g. tenant-scoped entities but no
 * `tenantId`); rejects when the source or the target cannot be reached. Otherwise resolves
 * with per-entity results; `ok` is false when any entity failed.
 *
 * @example
 * ```ts
 * const result = await performSync({ source: remotePool, target: localPool, tenantId: 42 });
 * if (!result.ok) console.error(result.entities);
 * ```
 */
export async function performSync<E extends AnyEntity = (typeof builtInEntities)[number]>(
  options: PerformSyncOptions<E>,
): Promise<SyncResult<E['name']>> {
  const { registry, selected } = resolveEntities(options);
  const logger = options.logger ?? silentLogger;
  const dryRun = options.dryRun ?? false;
  const tenantId = options.tenantId;

  const startedAt = new Date();
  const target = isSyncDatabase(options.target)
    ? options.target
    : createPgSyncDatabase(options.target);
  const targetCapabilities =
    'capabilities' in target && typeof target.capabilities === 'function'
      ? await target.capabilities()
      : undefined;
  const source = await openSourceSnapshot(options.source);
  logger.debug?.(
    {
      source: source.capabilities.engine,
      target: targetCapabilities?.engine ?? 'custom',
      tenantId: printable(tenantId),
      dryRun,
    },
    'sync started',
  );

  const context = new RunContext(
    registry,
    new Set(selected.map((entity) => entity.name)),
    { tenantId },
    source,
    target,
    logger,
    dryRun,
  );
  try {
    for (const entity of selected) await syncEntity(context, entity);
  } finally {
    await source.close();
  }

  const entities = Object.fromEntries(
    selected.map((entity) => [entity.name, context.tally(entity).toResult()]),
  ) as Record<E['name'], EntityResult>;
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
  return { ok: failed === 0, dryRun, tenantId, startedAt, finishedAt, entities };
}

/** Validates the options that need no I/O and picks the entities to run. */
function resolveEntities<E extends AnyEntity>(
  options: PerformSyncOptions<E>,
): { registry: Registry<E>; selected: readonly E[] } {
  const fail = (message: string): never => {
    throw new ConfigurationError(message);
  };
  if (typeof options?.source?.connect !== 'function')
    fail('performSync: source must be a pg-compatible pool (with connect())');
  if (
    !isSyncDatabase(options.target) &&
    typeof (options.target as PgPool)?.connect !== 'function'
  ) {
    fail('performSync: target must be a pg-compatible pool or a SyncDatabase');
  }
  const { tenantId } = options;
  if (tenantId !== undefined && !['string', 'number', 'bigint'].includes(typeof tenantId)) {
    fail(`performSync: tenantId must be a string, number or bigint, got ${typeof tenantId}`);
  }
  const given = options.entities ?? (builtInEntities as unknown as readonly E[]);
  const registry = isRegistry(given) ? given : createRegistry(given);
  const selected = options.only === undefined ? registry.entities : registry.select(options.only);
  const scoped = selected
    .filter((entity) => entity.tenantColumn !== undefined)
    .map((entity) => entity.name);
  if (tenantId === undefined && scoped.length > 0) {
    fail(
      `performSync: tenantId is required: ${scoped.join(', ')} ${scoped.length > 1 ? 'are' : 'is'} tenant-scoped`,
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
  return typeof candidate?.transaction === 'function' && typeof candidate.upsert === 'function';
}

const printable = (tenantId: TenantId | undefined) =>
  typeof tenantId === 'bigint' ? tenantId.toString() : tenantId;
