import type { Canonical } from './canonical.js';
import type { PreparedRow } from './rows.js';

/** What one entity's sync will change on the target. */
export interface Plan<Row = Record<string, unknown>> {
  /** Source rows whose key the target lacks. */
  readonly inserts: readonly PreparedRow<Row>[];
  /** Source rows whose key the target has with at least one different value. */
  readonly updates: readonly PreparedRow<Row>[];
  /** Target rows whose key the source lacks, to delete. */
  readonly deletes: readonly PreparedRow<Row>[];
  /** Target rows whose key the source lacks, to soft-delete (`onMissing: { set }`). */
  readonly softDeletes: readonly PreparedRow<Row>[];
  /** Rows present and equal on both sides: not written. */
  readonly unchanged: number;
}

/** A soft delete in canonical form: the column positions it sets and their values. */
export interface SoftDelete {
  readonly positions: readonly number[];
  readonly values: readonly Canonical[];
}

/**
 * Diffs source and target rows by key. Pure: rows in, plan out. Rows are compared by their
 * canonical values, so an unchanged row is never written. With a soft delete, a missing row that
 * already carries the soft-delete values is left alone.
 */
export function planChanges<Row>(
  source: Iterable<PreparedRow<Row>>,
  target: Iterable<PreparedRow<Row>>,
  softDelete?: SoftDelete,
): Plan<Row> {
  const remaining = new Map<string, PreparedRow<Row>>();
  for (const row of target) remaining.set(row.key, row);

  const inserts: PreparedRow<Row>[] = [];
  const updates: PreparedRow<Row>[] = [];
  const deletes: PreparedRow<Row>[] = [];
  const softDeletes: PreparedRow<Row>[] = [];
  let unchanged = 0;

  for (const row of source) {
    const existing = remaining.get(row.key);
    if (existing === undefined) {
      inserts.push(row);
      continue;
    }
    remaining.delete(row.key);
    if (sameValues(row.values, existing.values)) unchanged++;
    else updates.push(row);
  }

  for (const row of remaining.values()) {
    if (!softDelete) deletes.push(row);
    else if (
      softDelete.positions.every((position, i) => row.values[position] === softDelete.values[i])
    )
      unchanged++;
    else softDeletes.push(row);
  }
  return { inserts, updates, deletes, softDeletes, unchanged };
}

function sameValues(a: readonly Canonical[], b: readonly Canonical[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
