import type { Scope, SyncDatabase, TableDescription } from '../db/types.js';
import { describeKey, keyOf, type PreparedRow } from '../diff/rows.js';
import type { AnyEntity } from '../entity/types.js';
import { type DataError, formatKey } from '../errors.js';
import type { RunContext } from './context.js';
import { planDeletion } from './references.js';
import type { EntityTally, SyncWarning } from './result.js';

type Row = Record<string, unknown>;

const SAMPLE_KEYS = 5;

/** Some keys: how many, and a few (or, when changes are listed, all) of them as text. */
export interface Keys {
  readonly count: number;
  readonly keys: readonly string[];
}

/** What an entity's transaction did (or, in a dry run, would do); counted once it committed. */
export interface Outcome {
  readonly inserted: Keys;
  readonly updated: Keys;
  /** Own rows deleted or soft-deleted. */
  readonly deleted: Keys;
  readonly unchanged: number;
  readonly orphans: Keys & { readonly parents: readonly string[] };
  readonly heldElsewhere: Keys;
  /** Source rows that broke the definition and were skipped (`invalidRows: 'skip'`). */
  readonly invalid: Keys & { readonly firstProblem: string | undefined };
  readonly kept: Keys & { readonly referencedBy: readonly string[] };
  /** Rows of child entities deleted first because they referenced deleted rows. */
  readonly cascades: readonly { readonly entity: AnyEntity; readonly deleted: Keys }[];
  readonly warnings: readonly SyncWarning[];
}

/** Skipped invalid rows, from the errors that rejected them. */
export function invalidRows(errors: readonly DataError[]): Outcome['invalid'] {
  return {
    count: errors.length,
    keys: errors
      .slice(0, SAMPLE_KEYS)
      .map((error) => (error.key ? formatKey(error.key) : '(key unreadable)')),
    firstProblem: errors[0]?.message,
  };
}

/** The character limits of a table's columns: `character varying(n)` and `character(n)`. */
export function characterLimits(description: TableDescription): Map<string, number> {
  const limits = new Map<string, number>();
  for (const column of description.values()) {
    const limit = /^(?:character varying|character|varchar|char|bpchar)\((\d+)\)$/.exec(
      column.type,
    )?.[1];
    if (limit !== undefined) limits.set(column.name, Number(limit));
  }
  return limits;
}

/** Keys of prepared rows: all of them when changes are listed, else a sample for warnings. */
export function keysOf(
  context: RunContext,
  entity: AnyEntity,
  rows: readonly PreparedRow<Row>[],
  all = false,
): Keys {
  const listed = all && context.settings.listChanges ? rows : rows.slice(0, SAMPLE_KEYS);
  return { count: rows.length, keys: listed.map((row) => describeKey(entity, row.row)) };
}

/**
 * Removes target rows the source no longer has: children that reference them first (in scope,
 * same transaction), then the rows themselves, hard or soft. Rows still referenced from outside
 * the run's scope are kept. In a dry run nothing is written and the projection records it.
 */
export async function removeMissing(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  scope: Scope,
  missing: {
    readonly hard: readonly PreparedRow<Row>[];
    readonly soft: readonly PreparedRow<Row>[];
  },
): Promise<Pick<Outcome, 'deleted' | 'kept' | 'cascades'> & { readonly softUnchanged: number }> {
  const deletion = await planDeletion(context, db, entity, missing.hard);
  let softened = missing.soft.length;
  if (context.dryRun) {
    for (const cascade of deletion.cascades)
      addAll(context.projection(cascade.entity).removed, cascade.encodedKeys);
    addAll(
      context.projection(entity).removed,
      deletion.deletable.map((row) => row.key),
    );
  } else {
    for (const cascade of deletion.cascades) {
      await db.deleteByKey(cascade.entity, cascade.keys, context.scopeOf(cascade.entity));
    }
    await db.deleteByKey(
      entity,
      deletion.deletable.map((row) => keyOf(entity, row.row)),
      scope,
    );
    if (entity.onMissing !== 'delete' && missing.soft.length > 0) {
      const keys = missing.soft.map((row) => keyOf(entity, row.row));
      softened = await db.updateByKey(entity, keys, entity.onMissing.set, scope);
    }
  }
  const removed = [...deletion.deletable, ...missing.soft];
  const listAll = context.settings.listChanges;
  return {
    deleted: {
      ...keysOf(context, entity, removed, true),
      count: deletion.deletable.length + softened,
    },
    softUnchanged: missing.soft.length - softened,
    kept: { ...keysOf(context, entity, deletion.kept), referencedBy: deletion.keptFor },
    cascades: deletion.cascades.map((cascade) => ({
      entity: cascade.entity,
      deleted: {
        count: cascade.keys.length,
        keys: (listAll ? cascade.keys : cascade.keys.slice(0, SAMPLE_KEYS)).map((key) =>
          formatKey(key),
        ),
      },
    })),
  };
}

/** Adds a committed outcome to the entity's tally, and reports its warnings once each. */
export function recordOutcome(
  context: RunContext,
  entity: AnyEntity,
  tally: EntityTally,
  outcome: Outcome,
): void {
  const listChanges = context.settings.listChanges;
  for (const cascade of outcome.cascades) {
    const child = context.tally(cascade.entity);
    child.deleted += cascade.deleted.count;
    if (listChanges) {
      child.changes ??= { inserted: [], updated: [], deleted: [] };
      child.changes.deleted.push(...cascade.deleted.keys);
    }
  }
  tally.inserted += outcome.inserted.count;
  tally.updated += outcome.updated.count;
  tally.deleted += outcome.deleted.count;
  tally.unchanged += outcome.unchanged + outcome.kept.count;
  tally.skipped += outcome.orphans.count + outcome.heldElsewhere.count + outcome.invalid.count;
  if (listChanges) {
    tally.changes ??= { inserted: [], updated: [], deleted: [] };
    tally.changes.inserted.push(...outcome.inserted.keys);
    tally.changes.updated.push(...outcome.updated.keys);
    tally.changes.deleted.push(...outcome.deleted.keys);
  }

  const warn = (warning: SyncWarning) => {
    tally.warnings.push(warning);
    const { code, count, sampleKeys } = warning;
    context.logger.warn({ entity: entity.name, code, count, sampleKeys }, warning.message);
  };
  for (const warning of outcome.warnings) warn(warning);
  const { orphans, heldElsewhere, kept } = outcome;
  if (orphans.count > 0) {
    warn({
      code: 'orphaned-rows',
      count: orphans.count,
      sampleKeys: orphans.keys.slice(0, SAMPLE_KEYS),
      message: `${entity.name}: skipped ${orphans.count} source row(s) whose ${orphans.parents.join(', ')} row is not in the target`,
    });
  }
  if (heldElsewhere.count > 0) {
    warn({
      code: 'held-by-other-tenant',
      count: heldElsewhere.count,
      sampleKeys: heldElsewhere.keys.slice(0, SAMPLE_KEYS),
      message: `${entity.name}: skipped ${heldElsewhere.count} source row(s) whose key the target stores under another tenant; that tenant's next sync releases them`,
    });
  }
  const { invalid } = outcome;
  if (invalid.count > 0) {
    warn({
      code: 'invalid-rows',
      count: invalid.count,
      sampleKeys: invalid.keys.slice(0, SAMPLE_KEYS),
      message: `${entity.name}: skipped ${invalid.count} source row(s) that break the definition; the first: ${invalid.firstProblem ?? 'unknown'}`,
    });
  }
  if (kept.count > 0) {
    warn({
      code: 'kept-referenced-rows',
      count: kept.count,
      sampleKeys: kept.keys.slice(0, SAMPLE_KEYS),
      message: `${entity.name}: kept ${kept.count} row(s) missing on the source because ${kept.referencedBy.join(', ')} rows outside this run's scope still reference them`,
    });
  }
}

function addAll(set: Set<string>, values: Iterable<string>) {
  for (const value of values) set.add(value);
}
