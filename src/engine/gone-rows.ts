/**
 * How an incremental run tells which target rows the source no longer holds: for an entity that
 * soft deletes, whether any row it has not marked went (counts); where many went, which ones,
 * from both sides' keys read whole, 8 bytes a key, packed or hashed (`diff/key-sets.ts`). The
 * pipeline deletes or marks what these find, and compares keys by bucket where they cannot be
 * sure.
 */
import type * as core from 'zod/v4/core';
import type {
  Census,
  ReadRequest,
  TableDescription,
  TargetKeySet,
  TextValue,
} from '../db/types.js';
import { encodeValue } from '../diff/decode.js';
import {
  compareKeySets,
  type KeySetDifference,
  type SummarisedKeys,
  summariseKeys,
  unspreadAt,
} from '../diff/key-sets.js';
import { isExactColumn } from '../entity/columns.js';
import type { AnyEntity } from '../entity/types.js';
import type { EntityRun } from './pipeline.js';
import { settledLater } from './settle.js';

/**
 * For an entity that soft deletes: the values its soft delete sets, as the target's text.
 * `undefined` for one that deletes rows.
 */
export function softDeleteValues(
  entity: AnyEntity,
  description: TableDescription,
): Record<string, TextValue> | undefined {
  if (entity.onMissing === 'delete') return undefined;
  const set: Record<string, TextValue> = {};
  for (const [column, value] of Object.entries(entity.onMissing.set))
    set[column] = encodeValue(value, description.get(column));
  return set;
}

/**
 * Whether the columns a soft delete sets are written as the source holds them (`col` schemas,
 * which never transform a value), so a row holds the soft delete's values on the target exactly
 * when it does on the source.
 */
export function markedAsRead(entity: AnyEntity): boolean {
  if (entity.onMissing === 'delete') return false;
  const shape = (entity.columns as { shape: Record<string, core.$ZodType> }).shape;
  return Object.keys(entity.onMissing.set).every((column) => {
    const schema = shape[column];
    return schema !== undefined && isExactColumn(schema);
  });
}

/**
 * Whether the target rows the source lacks all hold the soft delete's values already: nothing
 * to mark then. The target holds every source row, each with the source's values, so it has as
 * many rows without those values as the source exactly when no unmarked row is left to mark.
 * Not for a dry run (its writes are not on the target to count) or where rows were skipped.
 */
export async function onlyMarkedLeft(
  run: EntityRun,
  softDeleted: Record<string, TextValue> | undefined,
  census: Census,
): Promise<boolean> {
  const { context, db, entity, request, outcome } = run;
  if (!softDeleted || census.live === undefined || context.dryRun) return false;
  if (outcome.skippedCandidates() > 0) return false;
  return (await db.count(entity, { ...request, softDeleted })) === census.live;
}

/**
 * Above this many keys a side, a key set (8 bytes a key in one value, in a buffer that grows by
 * doubling) nears the 1 GB PostgreSQL allows a value.
 */
export const KEY_SET_MAX_ROWS = 50_000_000;
/**
 * Whether to find `differences` keys among `rows` from both sides' key sets read whole, rather
 * than by bucket. Buckets (32 a difference) cost 8 bytes each and the keys of those that differ,
 * a thirty-second of the rows, so about `0.6 × rows + 256 × differences` bytes against a key
 * set's `8 × rows`: fewer, until a difference for some 32 rows. But they take two passes of each
 * table, the first a hash aggregate over as many groups, which past some 16,000 groups outgrows
 * the CPU's cache: at a million rows with 2,500 deleted, 0.6 s a side where a key set takes
 * 0.13 to 0.2 s. Past 512 differences, time decides.
 */
export function keySetsPay(differences: number, rows: number): boolean {
  return differences >= 512 || differences * 32 >= rows;
}

/** Target rows whose key the source lacks, found by `compareKeys`. */
export interface TargetOnly {
  readonly targetKeys: TargetKeySet;
  readonly positions: readonly number[];
}

/** The target's keys, read by `readTargetKeys`, perhaps before some of the run's writes. */
interface TargetKeys {
  readonly set: TargetKeySet;
  readonly summary: SummarisedKeys;
  /** Rows the run had inserted that they hold. */
  readonly insertedBefore: number;
}

/** The target's keys being read: `readTargetKeys`. */
export interface TargetKeysRead {
  /** Whether the run may write while they are read: see `TargetKeySetRead.apart`. */
  readonly apart: boolean;
  /** Whole and summarised; `undefined` where they cannot be read in bulk. */
  readonly keys: Promise<TargetKeys | undefined>;
}

/**
 * Begins reading the target's keys in scope, whole (8 bytes a key), summarised for a comparison
 * of `keysPerSide` keys a side.
 */
export function readTargetKeys(
  run: EntityRun,
  keys: ReadRequest,
  keysPerSide: number,
): TargetKeysRead {
  const read = run.db.keySet?.(run.entity, keys);
  if (!read) return { apart: true, keys: Promise.resolve(undefined) };
  // Read in the transaction, they hold what it inserted until then: it writes no more meanwhile.
  const insertedBefore = read.apart ? 0 : run.outcome.insertedSoFar();
  return {
    apart: read.apart,
    keys: settledLater(
      read.keys.then(
        (set) =>
          set && {
            set,
            // Packed keys are spread where they are; those found to delete are turned back
            // (`compareKeys`) before the set names them.
            summary: summariseKeys(set.hashes, {
              keys: keysPerSide,
              grouped: true,
              packed: keys.packedKey !== undefined,
              spreadInPlace: true,
            }),
            insertedBefore,
          },
      ),
    ),
  };
}

/** The source's keys compared with the target's, by `readSourceKeys`, for `compareKeys`. */
export interface KeySets {
  /** The comparison, once both sides' keys are read; `undefined` without either side's. */
  readonly compared: Promise<
    { difference: KeySetDifference; sourceKeys: number; target: TargetKeys } | undefined
  >;
}

/**
 * Reads the source's keys whole, without waiting for the target's, and compares them with the
 * target's as soon as both have come, whatever the run does meanwhile.
 */
export function readSourceKeys(
  run: EntityRun,
  keys: ReadRequest,
  target: TargetKeysRead,
  keysPerSide: number,
): KeySets {
  if (!run.db.keySet) return { compared: Promise.resolve(undefined) };
  const source = run.context.source.keySet(run.entity, keys).then(async (set) => {
    if (!set) return undefined;
    await afterPendingCallbacks();
    return {
      keys: set.hashes.length / 8,
      // The source's keys are only counted from here on: packed, they are spread where they are.
      summary: summariseKeys(set.hashes, {
        keys: keysPerSide,
        packed: keys.packedKey !== undefined,
        spreadInPlace: true,
      }),
    };
  });
  const compared = Promise.all([source, target.keys]).then(async ([sourceSide, targetSide]) => {
    if (!sourceSide || !targetSide) return undefined;
    await afterPendingCallbacks();
    return {
      difference: compareKeySets(sourceSide.summary, targetSide.summary),
      sourceKeys: sourceSide.keys,
      target: targetSide,
    };
  });
  return { compared: settledLater(compared) };
}

/**
 * Resolves once the callbacks already due have run: comparing a million keys a side takes tens
 * of milliseconds, and the run's next write, if its turn has come, goes to the target first
 * and is applied meanwhile.
 */
const afterPendingCallbacks = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Finds the keys the source no longer holds from both sides' key sets: one pass of each table,
 * where comparing by bucket takes a pass to summarise and another to read the keys of the
 * buckets that differ. `undefined` where it cannot be sure of every key: a side that cannot
 * read its keys in bulk, two keys with one hash, or source keys missing on the target other
 * than those the run inserted after its keys were read and the `absent` it left out (skipped,
 * or new in a dry run). The caller then compares keys by bucket.
 */
export async function compareKeys(
  run: EntityRun,
  keySets: KeySets,
  absent: number,
): Promise<TargetOnly | undefined> {
  const { context, entity, outcome } = run;
  const compared = await keySets.compared;
  if (!compared) return undefined;
  const { difference, sourceKeys, target } = compared;
  const insertedSince = context.dryRun ? 0 : outcome.insertedSoFar() - target.insertedBefore;
  context.logger.debug?.(
    {
      entity: entity.name,
      sourceKeys,
      targetKeys: target.set.hashes.length / 8,
      targetOnly: difference.targetOnly.length,
      sourceOnly: difference.sourceOnly,
      ambiguous: difference.ambiguous,
    },
    'entity key sets compared',
  );
  if (difference.ambiguous || difference.sourceOnly !== insertedSince + absent) return undefined;
  unspreadAt(target.summary, difference.targetOnly);
  return { targetKeys: target.set, positions: difference.targetOnly };
}
