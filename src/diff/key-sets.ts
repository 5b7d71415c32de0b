/**
 * Compares two sides' keys given as 64-bit key hashes (8 bytes each, any order), or as keys
 * packed into 8 bytes: which target keys the source lacks, and how many source keys the target
 * lacks. Pure: byte arrays in, positions out; a million keys a side take a few tens of
 * milliseconds and a few megabytes.
 *
 * Exact but for 64-bit coincidences, which the hashes themselves already risk: two keys with
 * one hash (never two packed keys), or a bucket of hashes whose count and checksums agree with
 * the other side's though its hashes differ. Where a coincidence shows (two target keys share a
 * hash the source holds too, so which one the source lacks cannot be told) the answer says so
 * (`ambiguous`) rather than guess, and a caller that needs certainty compares keys themselves.
 */
export interface KeySetDifference {
  /** Positions (0-based, in 8-byte units) of the target's hashes that the source lacks. */
  readonly targetOnly: number[];
  /** How many distinct source hashes the target lacks. */
  readonly sourceOnly: number;
  /** Some target hash stands for two keys or more, and the source holds it: see above. */
  readonly ambiguous: boolean;
}

const HASH_BYTES = 8;
/**
 * Above this many hashes on both sides together, a bucket's hashes are matched through a map
 * rather than a small table of fixed size (a key the source repeats on many rows puts them all
 * in one bucket).
 */
const CROWDED = 64;
/**
 * The positions (in 8-byte units) of one side's hashes whose bucket is flagged, flagged bucket
 * by flagged bucket: the `k`th's from `start[k]` to `start[k + 1]`; and the hashes themselves in
 * that order (two words each), so the comparison reads them side by side, not all over the set.
 */
interface Flagged {
  readonly start: Uint32Array;
  readonly positions: Uint32Array;
  readonly hashes: Uint32Array;
}

/** The hashes as 32-bit words: a view where the bytes are aligned, else an aligned copy. */
function wordsOf(hashes: Uint8Array): Uint32Array {
  const aligned = hashes.byteOffset % 4 === 0 ? hashes : new Uint8Array(hashes);
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4);
}

/** murmur3's finaliser: every input bit moves every output bit. */
function mix(value: number): number {
  let x = value ^ (value >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Per bucket of hashes (by their first word's leading `bits`): how many, and two 32-bit sums of
 * the hashes mixed, so that hashes with a pattern (consecutive numbers) do not sum alike. Two
 * buckets that agree hold the same hashes but by a 64-bit coincidence.
 */
function summarise(words: Uint32Array, bits: number): Uint32Array {
  const shift = 32 - bits;
  const summary = new Uint32Array(3 << bits);
  for (let i = 0; i < words.length; i += 2) {
    const first = words[i] as number;
    const second = words[i + 1] as number;
    const at = 3 * (first >>> shift);
    // A Uint32Array keeps sums modulo 2^32.
    summary[at] = (summary[at] as number) + 1;
    summary[at + 1] = (summary[at + 1] as number) + mix(first ^ Math.imul(second, 0x9e3779b1));
    summary[at + 2] = (summary[at + 2] as number) + mix(second ^ Math.imul(first, 0x27d4eb2f));
  }
  return summary;
}

/** The keys of `summariseSpreading`'s two Feistel rounds. */
const ROUND_ONE = 0x3c6ef372;
const ROUND_TWO = 0xa54ff53a;

/**
 * `summarise` for packed keys (consecutive numbers, as integer keys often are), which are first
 * spread over 64 bits as hashes are, one to one, by two rounds of a Feistel network on their two
 * words, and written to `spread`. Distinct keys stay distinct, so a comparison of spread keys is
 * exact where one of hashes risks a coincidence; and spread, they need no mixing to sum.
 */
function summariseSpreading(words: Uint32Array, bits: number, spread: Uint32Array): Uint32Array {
  const shift = 32 - bits;
  const summary = new Uint32Array(3 << bits);
  for (let i = 0; i < words.length; i += 2) {
    const right = (words[i] as number) ^ mix((words[i + 1] as number) ^ ROUND_ONE);
    const first = ((words[i + 1] as number) ^ mix(right ^ ROUND_TWO)) >>> 0;
    const second = right >>> 0;
    spread[i] = first;
    spread[i + 1] = second;
    const at = 3 * (first >>> shift);
    summary[at] = (summary[at] as number) + 1;
    summary[at + 1] = (summary[at + 1] as number) + first;
    summary[at + 2] = (summary[at + 2] as number) + second;
  }
  return summary;
}

/**
 * Turns the keys at `positions` of a side spread in place (`summariseKeys` with `spreadInPlace`)
 * back into the packed keys they were, where they are: the two rounds of `summariseSpreading`
 * undone in reverse order. Nothing to do for a side that was not.
 */
export function unspreadAt(side: SummarisedKeys, positions: readonly number[]): void {
  if (!side.spreadInPlace) return;
  const { words } = side;
  for (const position of positions) {
    const at = 2 * position;
    const right = words[at + 1] as number;
    const secondWord = ((words[at] as number) ^ mix(right ^ ROUND_TWO)) >>> 0;
    words[at] = (right ^ mix(secondWord ^ ROUND_ONE)) >>> 0;
    words[at + 1] = secondWord;
  }
}

/**
 * The buckets whose summaries differ: their numbers in order, and for each bucket its place in
 * that list plus one (0 where it does not differ).
 */
interface FlaggedBuckets {
  readonly list: Uint32Array;
  readonly placeOf: Uint32Array;
}

/**
 * The positions of the hashes whose bucket is flagged, placed by bucket in one pass (each
 * bucket's size is in the `summary`), or copied bucket by bucket where the side is grouped.
 */
function gatherFlagged(side: SummarisedKeys, { list, placeOf }: FlaggedBuckets): Flagged {
  const { words, summary, bits, grouped } = side;
  const shift = 32 - bits;
  const start = new Uint32Array(list.length + 1);
  for (let k = 0; k < list.length; k++)
    start[k + 1] = (start[k] as number) + (summary[3 * (list[k] as number)] as number);
  const positions = new Uint32Array(start[list.length] as number);
  const hashes = new Uint32Array(2 * positions.length);
  const take = (at: number, position: number) => {
    positions[at] = position;
    hashes[2 * at] = words[2 * position] as number;
    hashes[2 * at + 1] = words[2 * position + 1] as number;
  };
  if (grouped) {
    const { order, from } = grouped;
    for (let k = 0; k < list.length; k++) {
      const b = list[k] as number;
      let at = start[k] as number;
      for (let j = from[b] as number; j < (from[b + 1] as number); j++)
        take(at++, order[j] as number);
    }
    return { start, positions, hashes };
  }
  const next = start.slice(0, -1);
  const count = words.length / 2;
  for (let i = 0; i < count; i++) {
    const place = placeOf[(words[2 * i] as number) >>> shift] as number;
    if (place === 0) continue;
    take(next[place - 1] as number, i);
    next[place - 1] = (next[place - 1] as number) + 1;
  }
  return { start, positions, hashes };
}

/** What the comparison of the flagged buckets finds. */
interface Tally {
  readonly targetOnly: number[];
  sourceOnly: number;
  ambiguous: boolean;
}

/**
 * Slots of the table a bucket's source hashes go into: a bucket that is not crowded holds
 * `CROWDED` at most, so the table is never more than half full.
 */
const SLOTS = 2 * CROWDED;

/**
 * Compares each flagged bucket's hashes through a small table of its source hashes, open
 * addressed by their second word: a bucket holds some 8 a side, so a few steps a hash, where
 * sorting both sides would take many. Crowded buckets go to `compareCrowded`.
 */
function compareFlagged(s: Flagged, t: Flagged, flaggedBuckets: number, tally: Tally): void {
  const source = s.hashes;
  const target = t.hashes;
  // A slot is taken in this bucket where its mark is the bucket's place in the list plus one.
  const mark = new Int32Array(SLOTS);
  const held = new Uint32Array(SLOTS);
  const matched = new Uint8Array(SLOTS);
  for (let k = 0; k < flaggedBuckets; k++) {
    const sFrom = s.start[k] as number;
    const sTo = s.start[k + 1] as number;
    const tFrom = t.start[k] as number;
    const tTo = t.start[k + 1] as number;
    if (sFrom === sTo && tFrom === tTo) continue;
    if (sTo - sFrom + (tTo - tFrom) > CROWDED) {
      compareCrowded(s, sFrom, sTo, t, tFrom, tTo, tally);
      continue;
    }
    const bucketMark = k + 1;
    let distinct = 0;
    for (let i = sFrom; i < sTo; i++) {
      const at = 2 * i;
      const second = source[at + 1] as number;
      for (let slot = second & (SLOTS - 1); ; slot = (slot + 1) & (SLOTS - 1)) {
        if (mark[slot] !== bucketMark) {
          mark[slot] = bucketMark;
          held[slot] = at;
          matched[slot] = 0;
          distinct += 1;
          break;
        }
        const other = held[slot] as number;
        // The source repeats it: counted once.
        if (source[other] === source[at] && source[other + 1] === second) break;
      }
    }
    let found = 0;
    for (let j = tFrom; j < tTo; j++) {
      const first = target[2 * j] as number;
      const second = target[2 * j + 1] as number;
      for (let slot = second & (SLOTS - 1); ; slot = (slot + 1) & (SLOTS - 1)) {
        if (mark[slot] !== bucketMark) {
          tally.targetOnly.push(t.positions[j] as number);
          break;
        }
        const other = held[slot] as number;
        if (source[other] === first && source[other + 1] === second) {
          // A second target hash equal to one the source holds: which key it stands for is lost.
          if (matched[slot] === 1) tally.ambiguous = true;
          else found += 1;
          matched[slot] = 1;
          break;
        }
      }
    }
    tally.sourceOnly += distinct - found;
  }
}

/** A crowded bucket's comparison (`s` from `sFrom` to `sTo`, `t` likewise): through a map, as text. */
function compareCrowded(
  s: Flagged,
  sFrom: number,
  sTo: number,
  t: Flagged,
  tFrom: number,
  tTo: number,
  tally: Tally,
): void {
  const textOf = (hashes: Uint32Array, i: number) => `${hashes[2 * i]},${hashes[2 * i + 1]}`;
  const onSource = new Set<string>();
  for (let i = sFrom; i < sTo; i++) onSource.add(textOf(s.hashes, i));
  const onTarget = new Map<string, number>();
  for (let j = tFrom; j < tTo; j++) {
    const text = textOf(t.hashes, j);
    onTarget.set(text, (onTarget.get(text) ?? 0) + 1);
    if (!onSource.has(text)) tally.targetOnly.push(t.positions[j] as number);
  }
  for (const text of onSource) if (!onTarget.has(text)) tally.sourceOnly += 1;
  for (const [text, times] of onTarget) if (times > 1 && onSource.has(text)) tally.ambiguous = true;
}

/**
 * Bits of bucket number for buckets of about 8 hashes, `keys` a side: smaller buckets take a
 * larger summary (12 bytes a bucket) and less work in each bucket that differs.
 */
const bitsFor = (keys: number) => Math.min(17, Math.max(1, Math.ceil(Math.log2(keys / 8 + 1))));

const keyCount = (side: Uint8Array | SummarisedKeys) =>
  side instanceof Uint8Array ? side.length / HASH_BYTES : side.words.length / 2;

/** One side's key hashes summarised by bucket, ahead of the comparison: `summariseKeys`. */
export interface SummarisedKeys {
  readonly words: Uint32Array;
  readonly bits: number;
  readonly summary: Uint32Array;
  /** Packed keys spread over the bytes they came in: `unspreadAt` turns some back. */
  readonly spreadInPlace?: boolean;
  /** The positions of the hashes bucket by bucket, each bucket's from `from[b]`, if grouped. */
  readonly grouped?: { readonly order: Uint32Array; readonly from: Uint32Array } | undefined;
}

function checkLength(hashes: Uint8Array) {
  if (hashes.length % HASH_BYTES !== 0) throw new Error('key hashes come 8 bytes each');
}

/**
 * Summarises key hashes (`8 × n` bytes) in buckets of about 8 for `keys` keys a side (by
 * default as many as given): the part of a comparison one side allows alone, so it can be done
 * while the other side's keys are still on their way. `grouped` also puts the hashes in bucket
 * order, one more pass now that spares the comparison its pass over this side. `packed` takes
 * keys packed into 8 bytes rather than hashes (`summariseSpreading`); with `spreadInPlace` they
 * are spread where they are, overwriting `values` (8 bytes a key less to allocate), and
 * `unspreadAt` turns back those to be read again. Positions are kept either way.
 */
export function summariseKeys(
  values: Uint8Array,
  options: { keys?: number; grouped?: boolean; packed?: boolean; spreadInPlace?: boolean } = {},
): SummarisedKeys {
  const { keys = values.length / HASH_BYTES, grouped = false, packed = false } = options;
  const summarised = summariseIn(values, bitsFor(keys), packed, options.spreadInPlace);
  return grouped ? { ...summarised, grouped: groupByBucket(summarised) } : summarised;
}

function summariseIn(
  values: Uint8Array,
  bits: number,
  packed = false,
  inPlace = false,
): SummarisedKeys {
  checkLength(values);
  const given = wordsOf(values);
  if (!packed) return { words: given, bits, summary: summarise(given, bits) };
  // Each key's two words are read before its spread words are written: in place is safe.
  const words = inPlace ? given : new Uint32Array(given.length);
  return {
    words,
    bits,
    summary: summariseSpreading(given, bits, words),
    spreadInPlace: words === given,
  };
}

function groupByBucket({ words, summary, bits }: SummarisedKeys) {
  const shift = 32 - bits;
  const buckets = 1 << bits;
  const from = new Uint32Array(buckets + 1);
  for (let b = 0; b < buckets; b++) from[b + 1] = (from[b] as number) + (summary[3 * b] as number);
  const next = from.slice(0, -1);
  const order = new Uint32Array(words.length / 2);
  for (let i = 0; i < words.length; i += 2) {
    const bucket = (words[i] as number) >>> shift;
    const at = next[bucket] as number;
    next[bucket] = at + 1;
    order[at] = i / 2;
  }
  return { order, from };
}

/**
 * Compares the source's and the target's key hashes, each `8 × n` bytes or summarised already
 * (both for one size, then). Duplicates on the source (one key on two rows) count once.
 */
export function compareKeySets(
  source: Uint8Array | SummarisedKeys,
  target: Uint8Array | SummarisedKeys,
): KeySetDifference {
  // Buckets of about 8 hashes: a few differences among a million keys are found in two
  // passes over each side, summarising all buckets and gathering those that differ.
  const keys = Math.max(keyCount(source), keyCount(target));
  const sourceSide = source instanceof Uint8Array ? undefined : source;
  const targetSide = target instanceof Uint8Array ? undefined : target;
  const bits = sourceSide?.bits ?? targetSide?.bits ?? bitsFor(keys);
  if (sourceSide && targetSide && sourceSide.bits !== targetSide.bits)
    throw new Error('both sides of a key set comparison must be summarised for one size');
  const sourceSummarised = sourceSide ?? summariseIn(source as Uint8Array, bits);
  const targetSummarised = targetSide ?? summariseIn(target as Uint8Array, bits);
  const { summary: sourceSummary } = sourceSummarised;
  const { summary: targetSummary } = targetSummarised;
  const placeOf = new Uint32Array(1 << bits);
  const differing: number[] = [];
  for (let b = 0; b < 1 << bits; b++) {
    const at = 3 * b;
    if (
      sourceSummary[at] !== targetSummary[at] ||
      sourceSummary[at + 1] !== targetSummary[at + 1] ||
      sourceSummary[at + 2] !== targetSummary[at + 2]
    )
      placeOf[b] = differing.push(b);
  }
  const flagged = { list: Uint32Array.from(differing), placeOf };
  const s = gatherFlagged(sourceSummarised, flagged);
  const t = gatherFlagged(targetSummarised, flagged);
  const tally: Tally = { targetOnly: [], sourceOnly: 0, ambiguous: false };
  compareFlagged(s, t, differing.length, tally);
  const { targetOnly, sourceOnly, ambiguous } = tally;
  targetOnly.sort((a, b) => a - b);
  return { targetOnly, sourceOnly, ambiguous };
}
