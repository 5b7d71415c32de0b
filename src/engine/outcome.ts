import type { AnyEntity } from '../entity/types.js';
import type { RunContext } from './context.js';
import type { DetectionReport } from './detection.js';
import { type ChangeKey, type EntityTally, formatKey, type SyncWarning } from './result.js';

const SAMPLE_KEYS = 5;

/** Some keys: how many, and a few (or, when changes are listed, all) of them. */
export interface Keys {
  readonly count: number;
  readonly keys: readonly ChangeKey[];
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
  /** How the changed rows were found. */
  readonly detection: DetectionReport | undefined;
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
      append(child.changes.deleted, cascade.deleted.keys);
    }
  }
  tally.detection = outcome.detection;
  tally.inserted += outcome.inserted.count;
  tally.updated += outcome.updated.count;
  tally.deleted += outcome.deleted.count;
  tally.unchanged += outcome.unchanged + outcome.kept.count;
  tally.skipped += outcome.orphans.count + outcome.heldElsewhere.count + outcome.invalid.count;
  if (listChanges) {
    tally.changes ??= { inserted: [], updated: [], deleted: [] };
    append(tally.changes.inserted, outcome.inserted.keys);
    append(tally.changes.updated, outcome.updated.keys);
    append(tally.changes.deleted, outcome.deleted.keys);
  }

  const warn = (warning: SyncWarning) => {
    tally.warnings.push(warning);
    const { code, count } = warning;
    // Log lines stay readable text, whatever a key's values are.
    const sampleKeys = warning.sampleKeys.map(formatKey);
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

/** Appends one by one: `push(...items)` passes every item as an argument, and overflows the stack. */
function append<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}
