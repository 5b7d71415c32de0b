/**
 * The one pipeline every entity takes, in its target transaction, on every engine and in dry
 * runs alike:
 *
 *   candidates (every key, or the keys of buckets whose fingerprints differ)
 *   → both sides' keys and row hashes in key order, merged (diff/merge.ts)
 *   → new and changed source rows parsed and validated (diff/parse-row.ts)
 *   → orphans and keys of other tenants set apart (references.ts)
 *   → applied in batches: upserts, then deletes children first (skipped in a dry run)
 *
 * Memory holds a batch, never a table. Unchanged rows are neither parsed nor written.
 */
import type {
  BucketSelection,
  ReadRequest,
  SourceRow,
  SyncDatabase,
  TableDescription,
  TextKey,
  TextRow,
} from '../db/types.js';
import { keyOrders, mergeKeyHashes } from '../diff/merge.js';
import { nullKeyError, type ParsedRow, repeatedKeyError, rowParser } from '../diff/parse-row.js';
import type { AnyEntity } from '../entity/types.js';
import { DataError, SchemaError } from '../errors.js';
import type { RunContext } from './context.js';
import { chooseDetection, type DetectionReport, recordWatermark } from './detection.js';
import {
  compareKeys,
  KEY_SET_MAX_ROWS,
  type KeySets,
  keySetsPay,
  markedAsRead,
  onlyMarkedLeft,
  readSourceKeys,
  readTargetKeys,
  softDeleteValues,
  type TargetOnly,
} from './gone-rows.js';
import type { Keys, Outcome } from './outcome.js';
import { decodeKey, encodeKey, planDeletion, splitOrphans } from './references.js';
import type { ChangeKey } from './result.js';
import { allSettledOrFirstError } from './settle.js';

/** Changes gathered before they are applied together. */
const BATCH_ROWS = 5_000;
/** Changed rows held, at most, before their batches are written. */
const HELD_ROWS = 4 * BATCH_ROWS;
/**
 * Rows per bucket. Each bucket costs 8 bytes on the wire and a group in the aggregate that
 * computes it. Measured at a million rows: 16 rows per bucket made an unchanged run's aggregate
 * 35% slower, 256 left nine buckets in ten differing after 1% of rows changed; 64 keeps the
 * common unchanged run cheap.
 */
const ROWS_PER_BUCKET = 64;
const MAX_BUCKETS = 1 << 16;
/**
 * Changed rows the census places (by `ctid`) for their read to fetch them alone: up to this
 * share of the rows, or this many. Past both, they are read in a scan of their own, and a
 * sample of them tells whether comparing every row would cost less (`syncChanged`).
 */
const PLACED_UP_TO_SHARE = 0.05;
const PLACED_UP_TO_ROWS = 5_000;
/** Changed rows sampled, past those, to tell whether they changed in content. */
const SAMPLED_ROWS = 1_000;
/** Invalid rows reported by key; the rest are counted. */
const NULL_KEY_SAMPLE = 5;

/** What every phase of one entity's sync shares. */
export interface EntityRun {
  readonly context: RunContext;
  readonly db: SyncDatabase;
  readonly entity: AnyEntity;
  readonly description: TableDescription;
  /** Both sides' rows in scope, read as the target's types. */
  readonly request: ReadRequest;
  readonly parser: RowParser;
  readonly outcome: OutcomeBuilder;
  /**
   * Keys of target rows a dry run counts as gone though they are still there: rows a parent's
   * deletion takes with it earlier in the run. Empty outside dry runs.
   */
  readonly takenByParents: ReadonlySet<string>;
  progress(phase: 'reading' | 'comparing' | 'writing', rows: number): void;
}

type RowParser = ReturnType<typeof rowParser>;

/**
 * Runs the pipeline for one entity inside its target transaction `db`, with the identities of
 * its source tables being read (`sourceIdentities`).
 */
export async function syncEntityRows(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  identities: Promise<readonly (string | undefined)[]>,
): Promise<Outcome> {
  const description = await checkTargetTable(db, entity);
  const features = await db.features();
  const request: ReadRequest = {
    scope: context.scopeOf(entity),
    columns: description,
    hash: context.source.features.sqlHash && features.sqlHash ? 'sql' : 'text',
  };
  const parser = rowParser(
    entity,
    description,
    entity.tenantColumn === undefined ? undefined : context.tenantText,
    'source',
    true,
  );
  const run: EntityRun = {
    context,
    db,
    entity,
    description,
    request,
    parser,
    outcome: new OutcomeBuilder(context, entity, parser),
    takenByParents: new Set(context.dryRun ? context.projection(entity).removed : []),
    progress: (phase, rows) =>
      context.emit({ type: 'entity-progress', entity: entity.name, phase, rows }),
  };
  // The source's connection runs one statement at a time: its tables' identities come first.
  await identities.catch(() => undefined);
  await judgeTakenRowsAsNew(run);
  const detection = await chooseDetection(context, db, entity, request, identities);
  run.outcome.detection = { mode: detection.mode, reason: detection.reason };
  const changedRows = detection.since === undefined ? 0 : await syncChanged(run, detection.since);
  if (detection.since === undefined) await syncAll(run);
  await recordWatermark(context, db, entity, detection, {
    waiting: run.outcome.waiting(),
    changedRows,
  });
  return run.outcome.build();
}

/**
 * In a dry run, target rows a parent's deletion took with it are still in place, but the run
 * being projected would find them gone: the source's rows with those keys are judged as new
 * rows here (inserted, or skipped as orphans), and the comparisons that follow pass them by.
 */
async function judgeTakenRowsAsNew(run: EntityRun): Promise<void> {
  const { context, db, entity, request, parser, outcome, takenByParents } = run;
  const keys = [...takenByParents].map(decodeKey);
  for (let start = 0; start < keys.length; start += BATCH_ROWS) {
    const rows = await context.source.rowsByKey(
      entity,
      request,
      keys.slice(start, start + BATCH_ROWS),
    );
    const candidates = new Map<string, Candidate>();
    for (const row of rows) {
      const id = encodeKey(row.key);
      const repeated = candidates.get(id);
      candidates.set(id, {
        key: row.key,
        values: row.values,
        isNew: true,
        repeats: repeated ? (repeated.repeats ?? 1) + 1 : undefined,
      });
    }
    await applyUpserts(context, db, entity, parser, [...candidates.values()], outcome);
  }
}

/**
 * Full detection: compares every row. Candidates are every key, or the keys of the buckets
 * whose fingerprints differ; an empty table loads in bulk where it can.
 */
async function syncAll(run: EntityRun): Promise<void> {
  const { context, db, entity, request, parser, outcome } = run;
  // 1. Candidates.
  const candidates = await chooseCandidates(context, db, entity, request);
  await reportNullKeys(context, entity, request, candidates.nullKeys, parser, outcome);
  await reportDanglingRows(context, entity, request, outcome);
  // Against stored rows, most candidates are unchanged: read keys and hashes, and the values of
  // the rows that differ by key. Into an empty table every row goes: read them whole.
  const byKey = request.hash === 'sql' && candidates.targetHasRows;
  // An empty table (no tenant's rows): nothing can conflict, rows load in bulk.
  const emptyTable = !candidates.targetHasRows && !context.dryRun && (await db.isEmpty(entity));
  const read: ReadRequest = { ...request, buckets: candidates.buckets, values: !byKey };
  logCompared(run, candidates);
  if (candidates.buckets?.only?.length === 0) {
    outcome.unchanged += (candidates.sourceRows ?? 0) - outcome.sourceRowsAccountedFor();
    return;
  }

  // An empty table, rows whose validity their types settle, nothing to look up per row: the
  // source's rows load as they come, and are checked in bulk. Where a row breaks a rule the
  // load is undone and the rows go one by one below, so the row at fault is named.
  if (
    emptyTable &&
    parser.settled &&
    entity.references.length === 0 &&
    !context.settings.listChanges &&
    db.bulkLoad
  ) {
    const text = context.source.bulkText?.(entity, read);
    const loaded = text && (await db.bulkLoad(entity, text, context.scope, parser.required));
    context.logger.debug?.(
      { entity: entity.name, loaded: loaded ?? null },
      loaded === undefined || loaded === null ? 'bulk load declined' : 'entity loaded in bulk',
    );
    if (loaded !== undefined && loaded !== null) {
      outcome.loaded(loaded);
      run.progress('writing', loaded);
      return;
    }
  }

  // 2–5. Merge both sides in key order; apply changes a batch at a time.
  const seen = await compareAndApply(run, read, { byKey, emptyTable });
  const sourceRows = candidates.buckets === undefined ? seen : (candidates.sourceRows ?? seen);
  outcome.unchanged += sourceRows - outcome.sourceRowsAccountedFor();
}

/**
 * Incremental detection: only the rows the source changed since the watermark are read and
 * compared with the target's by key. Rows the source deleted leave no row to read: the counts of
 * both sides tell whether any went, and only then are keys compared (key sets read whole where
 * many went, else by bucket) to find them.
 * Returns how many changed rows the source had.
 */
async function syncChanged(run: EntityRun, since: string): Promise<number> {
  const { context, db, entity, request, parser, outcome, takenByParents } = run;
  const changes = context.source.changes;
  if ('unavailable' in changes) throw new Error(`${entity.name}: ${changes.unavailable}`);
  // Rows a soft delete marked stay on the target: the source's rows without its values are
  // counted apart, to tell whether any unmarked one went.
  const softDeleted = markedAsRead(entity) ? softDeleteValues(entity, request.columns) : undefined;
  const [census, targetRows] = await allSettledOrFirstError([
    changes.census(
      entity,
      {
        ...request,
        softDeleted,
        changedReadUpTo: { rows: PLACED_UP_TO_ROWS, share: PLACED_UP_TO_SHARE },
      },
      since,
    ),
    db.count(entity, request),
  ]);
  const before = targetRows - takenByParents.size;
  if (census.changed > Math.max(PLACED_UP_TO_ROWS, census.rows * PLACED_UP_TO_SHARE)) {
    const sample = await sampleChanged(run, since);
    // Fewer than one in a bucket's worth differs (rows written again as they were: a reload,
    // a `SET x = x`): comparing every row by bucket then reads fewer rows than all of them by key.
    if (sample.differing * ROWS_PER_BUCKET < sample.read) {
      outcome.detection = {
        mode: 'full',
        reason: `${census.changed} of ${census.rows} rows changed since the watermark, but ${sample.differing} of ${sample.read} sampled differ from the target's: comparing every row costs less`,
      };
      await syncAll(run);
      return census.changed;
    }
  }
  await reportNullKeys(context, entity, request, census.nullKeys, parser, outcome);
  await reportDanglingRows(context, entity, request, outcome);
  context.logger.debug?.(
    {
      entity: entity.name,
      since,
      changed: census.changed,
      sourceRows: census.rows,
      targetRows: before,
    },
    'entity compared',
  );
  // Keys of new rows that are not on the target after their batch (skipped, or a dry run's).
  const absent = new Set<string>();
  const keySetsFit = Math.max(before, census.rows) <= KEY_SET_MAX_ROWS;
  const keys: ReadRequest = {
    ...request,
    keysOnly: true,
    // Integer keys that fit in 64 bits go in key sets themselves: cheaper to read than hashes.
    packedKey: keySetsFit ? await context.source.packedKey(entity, request) : undefined,
  };
  // Not for a soft delete: rows it marked make every run look like one with rows gone.
  const keySetsAhead = keySetsFit && entity.onMissing === 'delete';
  const keysPerSide = Math.max(before + census.changed, census.rows);
  // As many rows as changed may have gone, hidden in the counts by as many new ones: then the
  // target's keys are read while the source reads its changed rows.
  const mayHaveGone = before + census.changed - census.rows;
  let targetKeys =
    keySetsAhead && census.changed > 0 && keySetsPay(mayHaveGone, census.rows)
      ? readTargetKeys(run, keys, keysPerSide)
      : undefined;
  let keySets: KeySets | undefined;
  const readKeySets = () => {
    targetKeys ??= readTargetKeys(run, keys, keysPerSide);
    keySets ??= readSourceKeys(run, keys, targetKeys, keysPerSide);
    return keySets;
  };
  if (census.changed > 0) {
    const read: ReadRequest = {
      ...request,
      changedSince: since,
      changedAt: census.changedAt,
      values: true,
    };
    let upserts: Candidate[] = [];
    const flush = async () => {
      // The target's keys, if read in the transaction, are its keys before any write.
      if (targetKeys && !targetKeys.apart) await targetKeys.keys;
      const pending = upserts;
      upserts = [];
      for (let i = 0; i < pending.length; i += BATCH_ROWS) {
        const batch = pending.slice(i, i + BATCH_ROWS);
        const notWritten = await applyUpserts(context, db, entity, parser, batch, outcome);
        for (const candidate of batch)
          if (candidate.isNew && (context.dryRun || notWritten.has(encodeKey(candidate.key))))
            absent.add(encodeKey(candidate.key));
        run.progress('writing', outcome.writtenSoFar());
      }
    };
    let seen = 0;
    let readRows = 0;
    let pendingNew = 0;
    // Rows gone, at least, if the new rows read so far are written: each adds one to the
    // target's count. Once these make key sets pay, both sides' keys are read while the rest is
    // read and written.
    const keySetsNow = () => {
      const goneAtLeast = before + outcome.insertedSoFar() + pendingNew - census.rows;
      return keySetsAhead && goneAtLeast > 0 && keySetsPay(goneAtLeast, census.rows);
    };
    const counted = async function* () {
      for await (const batch of context.source.rows(entity, read)) {
        readRows += batch.length;
        yield batch;
      }
    };
    for await (const batch of collapseRepeatedKeys(counted())) {
      seen += batch.length;
      run.progress('reading', seen);
      const stored = await storedHashes(run, batch);
      for (const row of batch) {
        const id = encodeKey(row.key);
        if (takenByParents.has(id)) continue;
        const hash = stored.get(id);
        // Written again with the same values (`SET x = x`), or changed back: nothing to do.
        if (hash === row.hash) continue;
        upserts.push({
          key: row.key,
          values: row.values,
          isNew: hash === undefined,
          repeats: row.repeats,
        });
        if (hash === undefined) pendingNew += 1;
        // Held back a while: the last ones are written while the keys are compared.
        if (upserts.length >= HELD_ROWS) {
          await flush();
          pendingNew = 0;
        }
      }
      // Rows the source deleted show in the counts. Both sides' keys are then read (the
      // target's perhaps already) before the last changes are written, and compared while they
      // are: rows to delete are none of those written, so they stay where the target's keys
      // found them.
      if (keySetsNow()) readKeySets();
    }
    // One snapshot: the census and the read see the same changed rows, or neither can be trusted.
    if (readRows !== census.changed)
      throw new Error(
        `the source counted ${census.changed} changed rows but read ${readRows} in the same snapshot: nothing is applied rather than a row missed`,
      );
    await flush();
  }
  // Every row the target held and every changed one are counted: nothing else wrote to it.
  const after = before + outcome.insertedSoFar();
  // The target holds every source row it held before and every changed one: with as many rows
  // as the source, it holds exactly the source's keys. Skipped rows break that count.
  if (
    (after !== census.rows || outcome.skippedCandidates() > 0) &&
    !(await onlyMarkedLeft(run, softDeleted, census))
  ) {
    context.logger.debug?.(
      { entity: entity.name, sourceRows: census.rows, targetRows: after },
      'entity keys compared',
    );
    const differences = Math.abs(after - census.rows) + outcome.skippedCandidates();
    const found =
      keySetsFit && (keySets !== undefined || keySetsPay(differences, census.rows))
        ? await compareKeys(run, readKeySets(), absent.size)
        : undefined;
    if (!found || !(await deleteTargetOnly(run, found))) {
      // Buckets small enough that most hold one difference at most: fewer keys to read.
      const candidates = await chooseCandidates(context, db, entity, keys, differences * 32);
      if (candidates.buckets?.only?.length !== 0)
        await compareAndApply(
          run,
          { ...keys, buckets: candidates.buckets, values: false },
          { byKey: true, emptyTable: false, known: absent },
        );
    }
  }
  // Keys read for nothing are still read to the end before the next read.
  await Promise.allSettled([targetKeys?.keys, keySets?.compared]);
  outcome.unchanged += census.rows - outcome.sourceRowsAccountedFor();
  return census.changed;
}

/**
 * Of a sample of the rows changed since the watermark (the first the source finds, in no
 * order), how many differ from the target's: new, or changed in content.
 */
async function sampleChanged(
  run: EntityRun,
  since: string,
): Promise<{ read: number; differing: number }> {
  const { context, entity, request } = run;
  const rows: SourceRow[] = [];
  for await (const batch of context.source.rows(entity, {
    ...request,
    changedSince: since,
    values: false,
    sample: SAMPLED_ROWS,
  }))
    rows.push(...batch);
  const stored = await storedHashes(run, rows);
  const differing = rows.filter((row) => stored.get(encodeKey(row.key)) !== row.hash).length;
  return { read: rows.length, differing };
}

/** The target's row hashes of these keys, by encoded key: none where it holds no such row. */
async function storedHashes(
  run: EntityRun,
  rows: readonly { readonly key: TextKey }[],
): Promise<Map<string, string>> {
  const { db, entity, request } = run;
  const found = await db.keyHashesOf(
    entity,
    request,
    rows.map((row) => row.key),
  );
  return new Map(found.map((row) => [encodeKey(row.key), row.hash]));
}

/**
 * Deletes the target rows `compareKeys` found. False, having changed nothing, where one of them
 * no longer holds the key it was read with.
 */
async function deleteTargetOnly(run: EntityRun, found: TargetOnly): Promise<boolean> {
  const { context, db, entity, description, outcome } = run;
  const missing = await found.targetKeys.keysAt(found.positions);
  if (missing.length !== found.positions.length) return false;
  for (let i = 0; i < missing.length; i += BATCH_ROWS) {
    await applyMissing(context, db, entity, description, missing.slice(i, i + BATCH_ROWS), outcome);
    run.progress('writing', outcome.writtenSoFar());
  }
  return true;
}

/**
 * Merges both sides' keys and hashes in key order and applies the differences a batch at a
 * time: new and changed rows upserted, rows the source lacks deleted. New keys in `known` were
 * dealt with already. Returns how many source rows were read.
 */
async function compareAndApply(
  run: EntityRun,
  read: ReadRequest,
  options: { byKey: boolean; emptyTable: boolean; known?: ReadonlySet<string> },
): Promise<number> {
  const { context, db, entity, description, parser, outcome } = run;
  const { byKey, emptyTable, known } = options;
  let seen = 0;
  let upserts: Candidate[] = [];
  let missing: TextKey[] = [];
  const flushUpserts = async () => {
    const batch = upserts;
    upserts = [];
    await applyUpserts(
      context,
      db,
      entity,
      parser,
      await withValues(context, entity, read, batch),
      outcome,
      emptyTable,
    );
    run.progress('writing', outcome.writtenSoFar());
  };
  const flushMissing = async () => {
    const batch = missing;
    missing = [];
    await applyMissing(context, db, entity, description, batch, outcome);
  };
  const counted = async function* <T>(batches: AsyncIterable<readonly T[]>) {
    for await (const batch of batches) {
      seen += batch.length;
      run.progress('reading', seen);
      yield batch;
    }
  };
  await mergeKeyHashes(
    collapseRepeatedKeys(counted(context.source.rows(entity, read))),
    db.keyHashes(entity, read),
    async (difference) => {
      if (difference.kind === 'missing') {
        missing.push(difference.key);
        if (missing.length >= BATCH_ROWS) await flushMissing();
        return;
      }
      if (difference.kind === 'new' && known?.has(encodeKey(difference.key))) return;
      if (difference.kind === 'changed' && run.takenByParents.has(encodeKey(difference.key)))
        return;
      upserts.push({
        key: difference.key,
        values: byKey ? undefined : difference.row.values,
        isNew: difference.kind === 'new',
        repeats: difference.row.repeats,
      });
      if (upserts.length >= BATCH_ROWS) await flushUpserts();
    },
    keyOrders(entity, description),
  );
  run.progress('comparing', seen);
  await flushUpserts();
  await flushMissing();
  return seen;
}

function logCompared(run: EntityRun, candidates: Candidates): void {
  run.context.logger.debug?.(
    {
      entity: run.entity.name,
      hash: run.request.hash,
      candidates: candidates.buckets === undefined ? 'all' : 'buckets',
      ...(candidates.buckets
        ? { buckets: candidates.buckets.count, differing: candidates.buckets.only?.length }
        : {}),
    },
    'entity compared',
  );
}

/** A new or changed source row; `repeats` when the source returned its key more than once. */
interface Candidate {
  readonly key: TextKey;
  /** Undefined until read (`rowsByKey`), when the stream carried keys and hashes only. */
  readonly values: TextRow | undefined;
  readonly isNew: boolean;
  readonly repeats?: number | undefined;
}

/** Reads the values of candidates the stream gave by key and hash only, one statement a batch. */
async function withValues(
  context: RunContext,
  entity: AnyEntity,
  request: ReadRequest,
  batch: readonly Candidate[],
): Promise<Candidate[]> {
  const wanted = batch.filter((c) => c.values === undefined && c.repeats === undefined);
  if (wanted.length === 0) return [...batch];
  const rows = await context.source.rowsByKey(
    entity,
    request,
    wanted.map((c) => c.key),
  );
  const byKey = new Map(rows.map((row) => [encodeKey(row.key), row.values]));
  return batch.map((c) =>
    c.values !== undefined || c.repeats !== undefined
      ? c
      : { ...c, values: byKey.get(encodeKey(c.key)) },
  );
}

/**
 * Rows whose key the source repeats (adjacent, the stream being in key order) become one row
 * marked with the count and a hash no stored row has: the key stays matched to its target row,
 * which is kept, and the row is judged as a whole where every row problem is.
 */
async function* collapseRepeatedKeys(
  batches: AsyncIterable<readonly SourceRow[]>,
): AsyncGenerator<(SourceRow & { readonly repeats?: number })[]> {
  let held: (SourceRow & { repeats?: number }) | undefined;
  for await (const batch of batches) {
    const out: (SourceRow & { repeats?: number })[] = [];
    for (const row of batch) {
      if (held && sameKey(held.key, row.key)) {
        held = { ...held, hash: REPEATED, repeats: (held.repeats ?? 1) + 1 };
        continue;
      }
      if (held) out.push(held);
      held = row;
    }
    if (out.length > 0) yield out;
  }
  if (held) yield [held];
}

const REPEATED = '\u0000repeated';
const sameKey = (a: TextKey, b: TextKey) => a.length === b.length && a.every((v, i) => v === b[i]);

interface Candidates {
  /** Only these buckets of keys; every key when undefined. */
  readonly buckets: BucketSelection | undefined;
  /** Source rows in scope with a complete key, where fingerprints counted them. */
  readonly sourceRows: number | undefined;
  /** Source rows in scope with a NULL key, where known; undefined: look. */
  readonly nullKeys: number | undefined;
  /** Whether the target holds rows in scope: then most candidates are unchanged. */
  readonly targetHasRows: boolean;
}

/**
 * Which keys to compare. With typed hashes on both sides and rows on the target, bucket
 * fingerprints (8 bytes per 64 rows) tell which buckets differ; only their keys are read. An
 * empty target, or engines without the hashes, compare every key.
 */
async function chooseCandidates(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  request: ReadRequest,
  /** At least this many buckets, where differences are expected. */
  minimumBuckets = 0,
): Promise<Candidates> {
  const none = { buckets: undefined, sourceRows: undefined, nullKeys: undefined };
  if (request.hash !== 'sql') return { ...none, targetHasRows: true };
  const estimate = await db.estimateRows(entity, request.scope);
  if (estimate === 0) return { ...none, targetHasRows: false };
  const count = Math.min(
    MAX_BUCKETS,
    2 ** Math.ceil(Math.log2(Math.max(1, estimate / ROWS_PER_BUCKET, minimumBuckets))),
  );
  const withBuckets = { ...request, buckets: { count } };
  const [source, target] = await allSettledOrFirstError([
    context.source.fingerprints(entity, withBuckets),
    db.fingerprints(entity, withBuckets),
  ]);
  const differing = differingBuckets(source.buckets, target.buckets);
  return {
    // Past half the buckets, naming them costs more than reading every key.
    buckets: differing.length > count / 2 ? undefined : { count, only: differing },
    sourceRows: source.rows,
    nullKeys: source.nullKeys,
    targetHasRows: true,
  };
}

/** The buckets whose 8-byte fingerprints differ between the two sides. */
export function differingBuckets(a: Uint8Array, b: Uint8Array): number[] {
  const differing: number[] = [];
  for (let offset = 0; offset < Math.max(a.length, b.length); offset += 8) {
    for (let i = offset; i < offset + 8; i++) {
      if (a[i] !== b[i]) {
        differing.push(offset / 8);
        break;
      }
    }
  }
  return differing;
}

/** Source rows with a NULL key fail the entity, or are skipped and reported. */
async function reportNullKeys(
  context: RunContext,
  entity: AnyEntity,
  request: ReadRequest,
  known: number | undefined,
  parser: ReturnType<typeof rowParser>,
  outcome: OutcomeBuilder,
): Promise<void> {
  if (known === 0) return;
  const rows = await context.source.nullKeyRows(entity, request, NULL_KEY_SAMPLE);
  const count = known ?? rows.length;
  if (count === 0) return;
  const problems = rows.map((row) => parser.parse(row)).filter((p) => p instanceof DataError);
  if (entity.invalidRows === 'fail') throw nullKeyError(entity, count);
  outcome.invalid(problems[0] ?? nullKeyError(entity, count), count, false);
}

/**
/**
 * A global entity read through its tenant's parents leaves out rows whose parent is missing on
 * the source altogether: counted apart, they are orphans like the rest.
 */
async function reportDanglingRows(
  context: RunContext,
  entity: AnyEntity,
  request: ReadRequest,
  outcome: OutcomeBuilder,
): Promise<void> {
  if (!request.scope.parents || !context.source.danglingRows) return;
  const dangling = await context.source.danglingRows(entity, request, NULL_KEY_SAMPLE);
  outcome.orphans(dangling.keys, dangling.parents, dangling.count);
}

/**
 * Parses, sets apart orphans and other tenants' keys, and writes a batch of source rows.
 * Returns the keys (as the candidates gave them) of the rows it skipped.
 */
async function applyUpserts(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  parser: RowParser,
  batch: readonly Candidate[],
  outcome: OutcomeBuilder,
  emptyTable = false,
): Promise<Set<string>> {
  const skipped = new Set<string>();
  if (batch.length === 0) return skipped;
  const parsed: { row: ParsedRow; isNew: boolean }[] = [];
  // A row's key as the candidate gave it: the key's text as the index compares it.
  const candidateKey = new WeakMap<ParsedRow, TextKey>();
  for (const { key, values, isNew, repeats } of batch) {
    if (repeats !== undefined) {
      const problem = repeatedKeyError(entity, key, parser.keyOf(key));
      if (entity.invalidRows === 'fail') throw problem;
      outcome.invalid(problem, repeats, true);
      outcome.repeatedKeys += 1;
      skipped.add(encodeKey(key));
      continue;
    }
    // The snapshot cannot lose a row it streamed; a driver that does is not to be trusted.
    if (values === undefined)
      throw new Error(`${entity.name}: the source did not return the row of a key it listed`);
    const row = parser.parse(values);
    if (row instanceof DataError) {
      if (entity.invalidRows === 'fail') throw row;
      outcome.invalid(row, 1, true);
      skipped.add(encodeKey(key));
    } else {
      parsed.push({ row, isNew });
      candidateKey.set(row, key);
    }
  }
  const skip = (row: ParsedRow) => skipped.add(encodeKey(candidateKey.get(row) ?? row.key));
  // New rows by identity: no key is encoded for the common case.
  const fresh = new WeakSet(parsed.filter((p) => p.isNew).map((p) => p.row));
  const isNew = (row: ParsedRow) => fresh.has(row);
  const { kept, orphans } = await splitOrphans(
    context,
    db,
    entity,
    parsed.map((p) => p.row),
  );
  outcome.orphans(
    orphans.map((o) => o.row.key),
    orphans.map((o) => o.parent),
  );
  for (const orphan of orphans) skip(orphan.row);
  let rows = kept;
  const scope = context.scopeOf(entity);
  if ((entity.tenantColumn !== undefined || scope.parents) && !emptyTable) {
    const found = await db.keysOutsideScope(
      entity,
      rows.filter(isNew).map((row) => row.key),
      scope,
    );
    if (found.length > 0) {
      const elsewhere = new Set(found.map(encodeKey));
      const held = (row: ParsedRow) => elsewhere.has(encodeKey(row.key));
      outcome.heldElsewhere(rows.filter(held).map((r) => r.key));
      for (const row of rows) if (held(row)) skip(row);
      rows = rows.filter((row) => !held(row));
    }
  }
  if (context.dryRun) {
    const inserted = rows.filter(isNew).map((row) => row.key);
    // Children look their parents' keys up in the projection; nobody else does.
    if (context.registry.childrenOf(entity.name).length > 0) {
      const added = context.projection(entity).added;
      for (const key of inserted) added.add(encodeKey(key));
    }
    outcome.written(
      inserted,
      rows.filter((row) => !isNew(row)).map((r) => r.key),
    );
    return skipped;
  }
  const written = await db.write(
    entity,
    rows.map((row) => row.values),
    context.scope,
    { allNew: emptyTable },
  );
  outcome.written(written.inserted, written.updated);
  return skipped;
}

/**
 * Removes target rows the source no longer has: children that reference them first (in scope,
 * same transaction), then the rows themselves, hard or soft. Rows still referenced from outside
 * the run's scope are kept. In a dry run nothing is written and the projection records it.
 */
async function applyMissing(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  description: TableDescription,
  missing: readonly TextKey[],
  outcome: OutcomeBuilder,
): Promise<void> {
  // A dry run leaves the rows a parent's deletion took with it in place: they are gone already.
  const removed = context.dryRun ? context.projection(entity).removed : undefined;
  const keys = removed ? missing.filter((key) => !removed.has(encodeKey(key))) : missing;
  if (keys.length === 0) return;
  const scope = context.scopeOf(entity);
  const set = softDeleteValues(entity, description);
  if (set) {
    const changed = context.dryRun ? keys.length : await db.setColumns(entity, keys, set, scope);
    outcome.softDeleted(keys, changed);
    return;
  }
  const plan = await planDeletion(context, db, entity, keys);
  for (const cascade of plan.cascades) await outcome.readsKeysOf(db, cascade.entity);
  if (context.dryRun) {
    for (const cascade of plan.cascades) {
      const removed = context.projection(cascade.entity).removed;
      for (const key of cascade.keys) removed.add(encodeKey(key));
    }
    if (context.registry.childrenOf(entity.name).length > 0) {
      const removed = context.projection(entity).removed;
      for (const key of plan.deletable) removed.add(encodeKey(key));
    }
  } else {
    for (const cascade of plan.cascades)
      await db.deleteKeys(cascade.entity, cascade.keys, context.scopeOf(cascade.entity));
    await db.deleteKeys(entity, plan.deletable, scope);
  }
  outcome.deleted(plan);
}

/** Fails before any write when the target table or one of the synced columns is missing. */
async function checkTargetTable(db: SyncDatabase, entity: AnyEntity): Promise<TableDescription> {
  const table =
    entity.table.schema === undefined
      ? entity.table.name
      : `${entity.table.schema}.${entity.table.name}`;
  const description = await db.describe(entity);
  if (!description) {
    throw new SchemaError(
      `${entity.name}: target table "${table}" does not exist (create it; syncSchemaSql has the built-in tables)`,
      { entity: entity.name },
    );
  }
  const missing = entity.columnNames.filter((column: string) => !description.has(column));
  if (missing.length > 0) {
    const them = missing.length > 1 ? 'them' : 'it';
    throw new SchemaError(
      `${entity.name}: column${missing.length > 1 ? 's' : ''} ${missing.map((c: string) => `"${c}"`).join(', ')} missing on the target table "${table}" (add ${them} or remove ${them} from the definition)`,
      { entity: entity.name, column: missing[0] },
    );
  }
  return description;
}

/** Gathers what an entity's batches did into one `Outcome`. */
class OutcomeBuilder {
  unchanged = 0;
  /** Keys the source returned more than once (each skipped as invalid). */
  repeatedKeys = 0;
  detection: DetectionReport | undefined;
  private inserted: TextKey[] = [];
  private insertedCount = 0;
  private updated: TextKey[] = [];
  private updatedCount = 0;
  private deletedKeys: TextKey[] = [];
  private deletedCount = 0;
  private orphanKeys: TextKey[] = [];
  private orphanCount = 0;
  /** Orphans outside the rows read, so not among the source rows accounted for. */
  private unreadOrphans = 0;
  private readonly orphanParents = new Set<string>();
  private heldKeys: TextKey[] = [];
  private heldCount = 0;
  private invalidKeys: ChangeKey[] = [];
  private invalidCount = 0;
  /** Invalid rows that were among the candidates (not rows with a NULL key, counted apart). */
  private invalidCandidates = 0;
  private firstProblem: string | undefined;
  private keptKeys: TextKey[] = [];
  private keptCount = 0;
  private readonly keptFor = new Set<string>();
  private readonly cascades = new Map<AnyEntity, { count: number; keys: TextKey[] }>();
  /** Per entity, its keys as its schema reads them: changes list key values, not texts. */
  private readonly keyReaders = new Map<AnyEntity, RowParser['keyOf']>();

  constructor(
    private readonly context: RunContext,
    private readonly entity: AnyEntity,
    parser: RowParser,
  ) {
    this.keyReaders.set(entity, parser.keyOf);
  }

  /** Reads the keys of a child entity whose rows go with this entity's (described once per session). */
  async readsKeysOf(db: SyncDatabase, child: AnyEntity) {
    if (this.keyReaders.has(child)) return;
    const description = (await db.describe(child)) ?? new Map();
    this.keyReaders.set(child, rowParser(child, description, undefined).keyOf);
  }

  private listed(target: TextKey[], keys: readonly TextKey[]) {
    const all = this.context.settings.listChanges;
    for (const key of keys) {
      if (!all && target.length >= 5) break;
      target.push(key);
    }
  }

  written(inserted: readonly TextKey[], updated: readonly TextKey[]) {
    this.insertedCount += inserted.length;
    this.updatedCount += updated.length;
    this.listed(this.inserted, inserted);
    this.listed(this.updated, updated);
  }

  /** Rows loaded in bulk into an empty table: all inserted, keys not listed. */
  loaded(count: number) {
    this.insertedCount += count;
  }

  writtenSoFar(): number {
    return this.insertedCount + this.updatedCount + this.deletedCount;
  }

  insertedSoFar(): number {
    return this.insertedCount;
  }

  /** Candidate rows skipped: they are not on the target as the source has them. */
  skippedCandidates(): number {
    return this.orphanCount + this.heldCount + this.invalidCandidates;
  }

  /** Skipped rows that may be taken later without changing on the source. */
  waiting(): number {
    return this.orphanCount + this.heldCount + this.repeatedKeys;
  }

  /** Orphans among the rows read; or, with `outsideScope`, that many more the scope left out. */
  orphans(keys: readonly TextKey[], parents: readonly string[], outsideScope?: number) {
    if (outsideScope === undefined) this.orphanCount += keys.length;
    else this.unreadOrphans += outsideScope;
    this.listed(this.orphanKeys, keys);
    for (const parent of parents) this.orphanParents.add(parent);
  }

  heldElsewhere(keys: readonly TextKey[]) {
    this.heldCount += keys.length;
    this.listed(this.heldKeys, keys);
  }

  invalid(problem: DataError, count: number, candidate: boolean) {
    this.invalidCount += count;
    if (candidate) this.invalidCandidates += count;
    this.firstProblem ??= problem.message;
    if (this.invalidKeys.length < 5) this.invalidKeys.push(problem.key ?? {});
  }

  softDeleted(keys: readonly TextKey[], changed: number) {
    this.deletedCount += changed;
    this.unchanged += keys.length - changed;
    this.listed(this.deletedKeys, keys);
  }

  deleted(plan: Awaited<ReturnType<typeof planDeletion>>) {
    this.deletedCount += plan.deletable.length;
    this.listed(this.deletedKeys, plan.deletable);
    this.keptCount += plan.kept.length;
    this.listed(this.keptKeys, plan.kept);
    for (const name of plan.keptFor) this.keptFor.add(name);
    for (const cascade of plan.cascades) {
      const entry = this.cascades.get(cascade.entity) ?? { count: 0, keys: [] };
      entry.count += cascade.keys.length;
      this.listed(entry.keys, cascade.keys);
      this.cascades.set(cascade.entity, entry);
    }
  }

  /** Source rows (with a complete key) this run wrote or skipped. */
  sourceRowsAccountedFor(): number {
    return (
      this.insertedCount +
      this.updatedCount +
      this.orphanCount +
      this.heldCount +
      this.invalidCandidates
    );
  }

  build(): Outcome {
    const keys = (entity: AnyEntity, list: readonly TextKey[], count: number): Keys => {
      const read = this.keyReaders.get(entity) as RowParser['keyOf'];
      return { count, keys: list.map((key) => read(key)) };
    };
    const { entity } = this;
    return {
      inserted: keys(entity, this.inserted, this.insertedCount),
      updated: keys(entity, this.updated, this.updatedCount),
      deleted: keys(entity, this.deletedKeys, this.deletedCount),
      unchanged: this.unchanged,
      orphans: {
        ...keys(entity, this.orphanKeys, this.orphanCount + this.unreadOrphans),
        parents: [...this.orphanParents],
      },
      heldElsewhere: keys(entity, this.heldKeys, this.heldCount),
      invalid: {
        count: this.invalidCount,
        keys: this.invalidKeys,
        firstProblem: this.firstProblem,
      },
      kept: {
        ...keys(entity, this.keptKeys, this.keptCount),
        referencedBy: [...this.keptFor],
      },
      cascades: [...this.cascades.entries()].map(([child, entry]) => ({
        entity: child,
        deleted: keys(child, entry.keys, entry.count),
      })),
      warnings: [],
      detection: this.detection,
    };
  }
}
