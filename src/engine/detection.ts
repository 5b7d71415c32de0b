/**
 * How an entity's changed rows are found: `incremental` reads only the rows the source changed
 * since the entity's watermark; `full` compares every row. Incremental detection is used only
 * where a watermark holds: same source, same history, same definition and source table, far from
 * the wraparound horizon, and a full comparison recent enough. Anything else compares in full,
 * and says why.
 */
import { createHash } from 'node:crypto';
import type {
  ChangeTracking,
  ReadRequest,
  SyncDatabase,
  TableDescription,
  Watermark,
} from '../db/types.js';
import type { AnyEntity } from '../entity/types.js';
import type { RunContext } from './context.js';
import { allSettledOrFirstError } from './settle.js';

/** Which detection an entity's sync used, and why. */
export interface DetectionReport {
  readonly mode: 'incremental' | 'full';
  readonly reason: string;
}

/** The detection chosen for one entity, with what its watermark needs. */
export interface Detection extends DetectionReport {
  /** Incremental: rows changed at or after this watermark are read. */
  readonly since?: string | undefined;
  /** The stored watermark that holds for this run, if one does. */
  readonly stored?: Watermark | undefined;
  /** Where a new watermark comes from; undefined where none can be kept. */
  readonly next?: { readonly tracking: ChangeTracking; readonly fingerprint: string } | undefined;
}

/** How a run chooses detection. */
export interface DetectionSettings {
  /** Read only changed rows where a watermark holds. */
  readonly incremental: boolean;
  /** Compare every row when the last full comparison is older than this, in milliseconds. */
  readonly verifyEveryMs: number;
  /** Compare every row of every entity in this run. */
  readonly full: boolean;
}

/** A day: a full comparison a day catches edits made directly on the sync database. */
export const DEFAULT_VERIFY_EVERY_MS = 24 * 60 * 60 * 1000;

/** The watermark's scope: the run's tenant as text, '' for none. */
export const watermarkScope = (context: RunContext): string => context.tenantText ?? '';

/**
 * The identities of the source tables an entity is read from (its own, then those of the
 * tenant's parents it is read through; `undefined` for one that is not a table), one after
 * another on the source's connection. Read before the entity's target transaction begins, so
 * that both sides work at once.
 */
export async function sourceIdentities(
  context: RunContext,
  entity: AnyEntity,
): Promise<(string | undefined)[]> {
  const changes = context.source.changes;
  if ('unavailable' in changes) return [];
  const parents = (context.scopeOf(entity).parents ?? []).map(({ parent }) => parent);
  const identities: (string | undefined)[] = [];
  for (const table of [entity, ...parents]) identities.push(await changes.tableIdentity(table));
  return identities;
}

/**
 * Chooses the detection for one entity, from the identities of its source tables
 * (`sourceIdentities`) and its stored watermark. The source meanwhile reads what the entity's
 * reads need to know of its columns.
 */
export async function chooseDetection(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  request: ReadRequest,
  identities: Promise<readonly (string | undefined)[]>,
): Promise<Detection> {
  const settings = context.settings.detection;
  const full = (reason: string, next?: Detection['next'], stored?: Watermark): Detection => ({
    mode: 'full',
    reason,
    next,
    stored,
  });
  const changes = context.source.changes;
  if ('unavailable' in changes)
    return full(`the source cannot tell changed rows: ${changes.unavailable}`);
  if (request.hash !== 'sql') return full('the databases cannot hash rows alike');
  // Each side's questions one after another on its connection, both sides at once.
  const [[identity, ...parentIdentities], [stored, target]] = await allSettledOrFirstError([
    (async () => {
      const read = await identities;
      await context.source.prepare(entity, request);
      return read;
    })(),
    (async () => {
      const watermarks = await db.watermarks(entity, watermarkScope(context));
      return [watermarks, await db.tableIdentity(entity)] as const;
    })(),
  ]);
  if (identity === undefined)
    return full(
      entity.source.kind === 'query'
        ? 'read through a query, whose rows carry no row versions'
        : 'the source relation is not a table (a view or a foreign table)',
    );
  // Read through its tenant's parents, a row's standing also changes with theirs.
  const parents = (request.scope.parents ?? []).map(({ parent }) => parent);
  const untracked = parents.find((_, i) => parentIdentities[i] === undefined);
  if (untracked)
    return full(
      `read through the tenant's ${untracked.name} rows, which carry no row versions (a query, a view or a foreign table)`,
    );
  if ('unavailable' in stored) return full(stored.unavailable);
  const next = {
    tracking: changes,
    fingerprint: fingerprintOf(
      entity,
      request.columns,
      [identity, ...parentIdentities, target].join('|'),
    ),
  };
  if (!settings.incremental) return full('incremental detection is turned off', next);
  if (settings.full) return full('a full comparison was asked for', next);
  const mark = stored.find((w) => w.origin === changes.origin);
  if (!mark) {
    return full(
      stored.length === 0
        ? 'no watermark yet (a first sync, or the last one skipped rows to take later)'
        : `the source is not the one the watermark came from (${sourceChange(stored[0]?.origin ?? '', changes.origin)})`,
      next,
    );
  }
  if (mark.fingerprint !== next.fingerprint)
    return full(
      'the definition, the source table or the target table changed (or the target was emptied)',
      next,
    );
  const unreadable = changes.unreadableSince(mark.position);
  if (unreadable) return full(unreadable, next);
  const age = Date.now() - mark.verifiedAt.getTime();
  if (!(age >= 0 && age < settings.verifyEveryMs))
    return full(
      `periodic full comparison (the last was at ${mark.verifiedAt.toISOString()})`,
      next,
      mark,
    );
  return {
    mode: 'incremental',
    reason: `rows changed since watermark ${mark.position}`,
    since: mark.position,
    stored: mark,
    next,
  };
}

/** What an entity's sync did that decides its next watermark. */
export interface WatermarkFacts {
  /** Source rows skipped that nothing on the source will change again: orphans, rows held by another tenant, repeated keys. */
  readonly waiting: number;
  /** Rows read as changed since the watermark. */
  readonly changedRows: number;
}

/**
 * Inside the entity's transaction, after its changes: moves its watermark to this run's
 * snapshot, so the next run reads only what changed after it. Rows skipped that may be taken
 * later without changing (an orphan whose parent arrives) keep the watermark where it was, or,
 * after a full comparison, remove it. A converged incremental run leaves it as it is: it writes
 * nothing.
 */
export async function recordWatermark(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  detection: Detection,
  facts: WatermarkFacts,
): Promise<void> {
  const { next, stored } = detection;
  if (context.dryRun || !next) return;
  const scope = watermarkScope(context);
  if (facts.waiting > 0) {
    if (detection.mode === 'full') await db.saveWatermark(entity, scope, undefined);
    return;
  }
  if (
    detection.mode === 'incremental' &&
    stored &&
    facts.changedRows === 0 &&
    !next.tracking.ageing(stored.position)
  )
    return;
  await db.saveWatermark(entity, scope, {
    origin: next.tracking.origin,
    position: next.tracking.watermark,
    fingerprint: next.fingerprint,
    verifiedAt: detection.mode === 'full' ? new Date() : (stored?.verifiedAt ?? new Date()),
  });
}

/** What differs between two origins (`system:timeline:database`), in words. */
function sourceChange(before: string, after: string): string {
  const [system, timeline, database] = before.split(':');
  const [system2, timeline2, database2] = after.split(':');
  if (system !== system2) return 'another cluster: a restore, a copy or another server';
  if (timeline !== timeline2)
    return `timeline ${timeline} → ${timeline2}: a failover or a point-in-time restore`;
  if (database !== database2) return 'another database of that name: recreated or swapped';
  return `${before} → ${after}`;
}

/**
 * What a watermark holds for: the definition (table, columns, key, tenant, source, references,
 * the schemas' structure), the target's column types, and the identities of the source and
 * target tables. Any change compares every row once. A function's code (a transform, a refine)
 * is not part of it, since two builds of one definition differ there: after changing one, run
 * once with `full: true`, or let the periodic full comparison catch up.
 */
export function fingerprintOf(
  entity: AnyEntity,
  columns: TableDescription,
  tables: string,
): string {
  const definition = {
    name: entity.name,
    table: entity.table,
    columns: entity.columnNames,
    key: entity.key,
    tenantColumn: entity.tenantColumn ?? null,
    source: entity.source,
    references: entity.references,
    onMissing: entity.onMissing,
    schema: signature(entity.columns),
    target: entity.columnNames.map((column: string) => columns.get(column)?.type ?? null),
    tables,
  };
  return createHash('sha256').update(JSON.stringify(definition)).digest('hex').slice(0, 32);
}

/** A schema's structure as plain data: its definition's fields, functions as their code. */
function signature(value: unknown, seen = new WeakSet<object>(), depth = 0): unknown {
  // A function's code differs between builds of one definition: only its place counts.
  if (typeof value === 'function') return 'fn';
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return value ?? null;
  if (seen.has(value) || depth > 24) return '…';
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => signature(item, seen, depth + 1));
  if (value instanceof RegExp) return `re:${value.source}/${value.flags}`;
  // zod 4 keeps a schema's definition under `_zod.def`, zod 3 under `_def`.
  const zod = value as { _zod?: { def?: unknown }; _def?: unknown };
  if (zod._zod?.def !== undefined) return signature(zod._zod.def, seen, depth + 1);
  if (zod._def !== undefined) return signature(zod._def, seen, depth + 1);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    if (key.startsWith('~')) continue;
    out[key] = signature((value as Record<string, unknown>)[key], seen, depth + 1);
  }
  return out;
}
