/**
 * Compares two sides' keys given as 64-bit key hashes (8 bytes each, any order): which target
 * keys the source lacks, and how many source keys the target lacks. Pure: byte arrays in,
 * positions out; a million keys a side take a few tens of milliseconds and a few megabytes.
 *
 * Exact but for 64-bit coincidences, which the hashes themselves already risk: two keys with
 * one hash, or a bucket of hashes whose count and checksums agree with the other side's though
 * its hashes differ. Where a coincidence shows (two target keys share a hash the source holds
 * too, so which one the source lacks cannot be told) the answer says so (`ambiguous`) rather
 * than guess, and a caller that needs certainty compares keys themselves.
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
/** Above this many hashes, a bucket is sorted by comparison rather than by insertion. */
const CROWDED = 32;
/**
 * Some hashes as pairs of 32-bit words, each with its position in the input. The words are the
 * hash's bytes read in the machine's order: any order serves, as long as both sides share it.
 */
interface Hashes {
  readonly words: Uint32Array;
  readonly positions: Uint32Array;
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

/**
 * The hashes whose bucket is `flagged`, sorted by their words, the first first, with their
 * positions: placed by bucket in one pass (each bucket's size is in the `summary`), then each
 * bucket, a few hashes long, sorted by insertion.
 */
function gatherSorted(side: SummarisedKeys, flagged: Uint8Array): Hashes {
  const { words, summary, bits, grouped } = side;
  const shift = 32 - bits;
  const buckets = 1 << bits;
  // Where each flagged bucket's hashes start, and the end of the last.
  const start = new Uint32Array(buckets + 1);
  for (let b = 0; b < buckets; b++)
    start[b + 1] = (start[b] as number) + (flagged[b] === 1 ? (summary[3 * b] as number) : 0);
  const count = start[buckets] as number;
  const sorted = new Uint32Array(2 * count);
  const positions = new Uint32Array(count);
  const place = (at: number, position: number) => {
    sorted[2 * at] = words[2 * position] as number;
    sorted[2 * at + 1] = words[2 * position + 1] as number;
    positions[at] = position;
  };
  if (grouped) {
    // Only the flagged buckets' hashes are visited, in the order they were given.
    for (let b = 0; b < buckets; b++) {
      if (flagged[b] === 0) continue;
      let at = start[b] as number;
      for (let k = grouped.from[b] as number; k < (grouped.from[b + 1] as number); k++)
        place(at++, grouped.order[k] as number);
    }
  } else {
    const next = start.slice(0, -1);
    for (let i = 0; i < words.length; i += 2) {
      const bucket = (words[i] as number) >>> shift;
      if (flagged[bucket] === 0) continue;
      const at = next[bucket] as number;
      next[bucket] = at + 1;
      place(at, i / 2);
    }
  }
  const before = (i: number, first: number, second: number) =>
    (sorted[2 * i] as number) > first ||
    (sorted[2 * i] === first && (sorted[2 * i + 1] as number) > second);
  for (let b = 0; b < buckets; b++) {
    const from = start[b] as number;
    const to = start[b + 1] as number;
    if (to - from > CROWDED) {
      sortCrowded(sorted, positions, from, to);
      continue;
    }
    for (let i = from + 1; i < to; i++) {
      const first = sorted[2 * i] as number;
      const second = sorted[2 * i + 1] as number;
      const position = positions[i] as number;
      let j = i - 1;
      for (; j >= from && before(j, first, second); j--) {
        sorted[2 * j + 2] = sorted[2 * j] as number;
        sorted[2 * j + 3] = sorted[2 * j + 1] as number;
        positions[j + 1] = positions[j] as number;
      }
      sorted[2 * j + 2] = first;
      sorted[2 * j + 3] = second;
      positions[j + 1] = position;
    }
  }
  return { words: sorted, positions };
}

/**
 * Sorts `from` to `to` of hashes and their positions by hash, where a bucket holds too many for
 * insertion (a key the source repeats on many rows puts them all in one bucket).
 */
function sortCrowded(words: Uint32Array, positions: Uint32Array, from: number, to: number) {
  const order = Array.from({ length: to - from }, (_, i) => from + i);
  order.sort(
    (a, b) =>
      (words[2 * a] as number) - (words[2 * b] as number) ||
      (words[2 * a + 1] as number) - (words[2 * b + 1] as number),
  );
  const entries = order.map((i) => [words[2 * i], words[2 * i + 1], positions[i]] as const);
  entries.forEach(([first, second, position], i) => {
    words[2 * (from + i)] = first as number;
    words[2 * (from + i) + 1] = second as number;
    positions[from + i] = position as number;
  });
}

/** Bits of bucket number for buckets of about 16 hashes, `keys` a side. */
const bitsFor = (keys: number) => Math.min(16, Math.max(1, Math.ceil(Math.log2(keys / 16 + 1))));

const keyCount = (side: Uint8Array | SummarisedKeys) =>
  side instanceof Uint8Array ? side.length / HASH_BYTES : side.words.length / 2;

/** One side's key hashes summarised by bucket, ahead of the comparison: `summariseKeys`. */
export interface SummarisedKeys {
  readonly words: Uint32Array;
  readonly bits: number;
  readonly summary: Uint32Array;
  /** The positions of the hashes bucket by bucket, each bucket's from `from[b]`, if grouped. */
  readonly grouped?: { readonly order: Uint32Array; readonly from: Uint32Array } | undefined;
}

function checkLength(hashes: Uint8Array) {
  if (hashes.length % HASH_BYTES !== 0) throw new Error('key hashes come 8 bytes each');
}

/**
 * Summarises key hashes (`8 × n` bytes) in buckets of about 16 for `keys` keys a side (by
 * default as many as given): the part of a comparison one side allows alone, so it can be done
 * while the other side's keys are still on their way. `grouped` also puts the hashes in bucket
 * order, one more pass now that spares the comparison its pass over this side.
 */
export function summariseKeys(
  hashes: Uint8Array,
  keys = hashes.length / HASH_BYTES,
  grouped = false,
): SummarisedKeys {
  const summarised = summariseIn(hashes, bitsFor(keys));
  return grouped ? { ...summarised, grouped: groupByBucket(summarised) } : summarised;
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

function summariseIn(hashes: Uint8Array, bits: number): SummarisedKeys {
  checkLength(hashes);
  const words = wordsOf(hashes);
  return { words, bits, summary: summarise(words, bits) };
}

/**
 * Compares the source's and the target's key hashes, each `8 × n` bytes or summarised already
 * (both for one size, then). Duplicates on the source (one key on two rows) count once.
 */
export function compareKeySets(
  source: Uint8Array | SummarisedKeys,
  target: Uint8Array | SummarisedKeys,
): KeySetDifference {
  // Buckets of about 16 hashes: a few differences among a million keys are found in two
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
  const flagged = new Uint8Array(1 << bits);
  for (let b = 0; b < 1 << bits; b++)
    for (let k = 3 * b; k < 3 * b + 3; k++)
      if (sourceSummary[k] !== targetSummary[k]) flagged[b] = 1;
  const s = gatherSorted(sourceSummarised, flagged);
  const t = gatherSorted(targetSummarised, flagged);
  const targetOnly: number[] = [];
  let sourceOnly = 0;
  let ambiguous = false;
  // A merge of two sorted lists, a run of equal hashes at a time.
  const sEnd = s.positions.length;
  const tEnd = t.positions.length;
  const sameAt = (a: Uint32Array, i: number, b: Uint32Array, j: number) =>
    a[2 * i] === b[2 * j] && a[2 * i + 1] === b[2 * j + 1];
  let i = 0;
  let j = 0;
  while (i < sEnd || j < tEnd) {
    const sourceFirst =
      j >= tEnd ||
      (i < sEnd &&
        ((s.words[2 * i] as number) < (t.words[2 * j] as number) ||
          (s.words[2 * i] === t.words[2 * j] &&
            (s.words[2 * i + 1] as number) < (t.words[2 * j + 1] as number))));
    if (sourceFirst) {
      sourceOnly += 1;
      const first = i;
      while (i < sEnd && sameAt(s.words, i, s.words, first)) i += 1;
      continue;
    }
    let run = j + 1;
    while (run < tEnd && sameAt(t.words, run, t.words, j)) run += 1;
    if (i < sEnd && sameAt(s.words, i, t.words, j)) {
      if (run - j > 1) ambiguous = true;
      const first = i;
      while (i < sEnd && sameAt(s.words, i, s.words, first)) i += 1;
    } else for (let k = j; k < run; k++) targetOnly.push(t.positions[k] as number);
    j = run;
  }
  targetOnly.sort((a, b) => a - b);
  return { targetOnly, sourceOnly, ambiguous };
}
