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
/** Some hashes as 32-bit halves (high, low, high, low, …), with each one's position in the input. */
interface Hashes {
  readonly words: Uint32Array;
  readonly positions: Uint32Array;
}

/** The hashes as 32-bit halves: each 4 bytes swapped on a copy, then read natively. */
function wordsOf(hashes: Uint8Array): Uint32Array {
  const copy = Buffer.from(hashes);
  copy.swap32();
  return new Uint32Array(copy.buffer, copy.byteOffset, copy.length / 4);
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
 * Per bucket of hashes (by their leading `bits`): how many, and two 32-bit sums of the hashes
 * mixed, so that hashes with a pattern (consecutive numbers) do not sum alike. Two buckets that
 * agree hold the same hashes but by a 64-bit coincidence.
 */
function summarise(words: Uint32Array, bits: number): Uint32Array {
  const shift = 32 - bits;
  const summary = new Uint32Array(3 << bits);
  for (let i = 0; i < words.length; i += 2) {
    const high = words[i] as number;
    const low = words[i + 1] as number;
    const at = 3 * (high >>> shift);
    // A Uint32Array keeps sums modulo 2^32.
    summary[at] = (summary[at] as number) + 1;
    summary[at + 1] = (summary[at + 1] as number) + mix(high ^ Math.imul(low, 0x9e3779b1));
    summary[at + 2] = (summary[at + 2] as number) + mix(low ^ Math.imul(high, 0x27d4eb2f));
  }
  return summary;
}

/** The hashes whose bucket is `flagged`. */
function gather(words: Uint32Array, flagged: Uint8Array, bits: number): Hashes {
  const shift = 32 - bits;
  let count = 0;
  for (let i = 0; i < words.length; i += 2)
    count += flagged[(words[i] as number) >>> shift] as number;
  const picked = new Uint32Array(count * 2);
  const positions = new Uint32Array(count);
  let at = 0;
  for (let i = 0; i < words.length; i += 2) {
    if (flagged[(words[i] as number) >>> shift] === 0) continue;
    picked[2 * at] = words[i] as number;
    picked[2 * at + 1] = words[i + 1] as number;
    positions[at] = i / 2;
    at += 1;
  }
  return { words: picked, positions };
}

/**
 * Sorts hashes by value, high half first, and their positions with them: by their leading
 * `bits` first (a counting sort), then each bucket, a few hashes long, by insertion.
 */
function sortHashes({ words, positions }: Hashes, bits: number): Hashes {
  const count = positions.length;
  const shift = 32 - bits;
  const start = new Uint32Array((1 << bits) + 1);
  for (let i = 0; i < count; i++) {
    const bucket = ((words[2 * i] as number) >>> shift) + 1;
    start[bucket] = (start[bucket] as number) + 1;
  }
  for (let b = 1; b < start.length; b++) start[b] = (start[b] as number) + (start[b - 1] as number);
  const sorted = new Uint32Array(words.length);
  const sortedPositions = new Uint32Array(count);
  const next = start.slice(0, -1);
  for (let i = 0; i < count; i++) {
    const high = words[2 * i] as number;
    const at = next[high >>> shift] as number;
    next[high >>> shift] = at + 1;
    sorted[2 * at] = high;
    sorted[2 * at + 1] = words[2 * i + 1] as number;
    sortedPositions[at] = positions[i] as number;
  }
  const before = (i: number, high: number, low: number) =>
    (sorted[2 * i] as number) > high ||
    (sorted[2 * i] === high && (sorted[2 * i + 1] as number) > low);
  for (let b = 0; b < 1 << bits; b++) {
    const from = start[b] as number;
    const to = start[b + 1] as number;
    if (to - from > CROWDED) {
      sortCrowded(sorted, sortedPositions, from, to);
      continue;
    }
    for (let i = from + 1; i < to; i++) {
      const high = sorted[2 * i] as number;
      const low = sorted[2 * i + 1] as number;
      const position = sortedPositions[i] as number;
      let j = i - 1;
      for (; j >= from && before(j, high, low); j--) {
        sorted[2 * j + 2] = sorted[2 * j] as number;
        sorted[2 * j + 3] = sorted[2 * j + 1] as number;
        sortedPositions[j + 1] = sortedPositions[j] as number;
      }
      sorted[2 * j + 2] = high;
      sorted[2 * j + 3] = low;
      sortedPositions[j + 1] = position;
    }
  }
  return { words: sorted, positions: sortedPositions };
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
  entries.forEach(([high, low, position], i) => {
    words[2 * (from + i)] = high as number;
    words[2 * (from + i) + 1] = low as number;
    positions[from + i] = position as number;
  });
}

/** One side's key hashes summarised by bucket, ahead of the comparison: `summariseKeys`. */
export interface SummarisedKeys {
  readonly words: Uint32Array;
  readonly bits: number;
  readonly summary: Uint32Array;
}

function checkLength(hashes: Uint8Array) {
  if (hashes.length % HASH_BYTES !== 0) throw new Error('key hashes come 8 bytes each');
}

/**
 * Summarises key hashes (`8 × n` bytes) in buckets of about 16 for `keys` keys a side (by
 * default as many as given): the part of a comparison one side allows alone, so it can be done
 * while the other side's keys are still on their way.
 */
export function summariseKeys(
  hashes: Uint8Array,
  keys = hashes.length / HASH_BYTES,
): SummarisedKeys {
  checkLength(hashes);
  const bits = Math.min(16, Math.max(1, Math.ceil(Math.log2(keys / 16 + 1))));
  const words = wordsOf(hashes);
  return { words, bits, summary: summarise(words, bits) };
}

/**
 * Compares the source's and the target's key hashes, each `8 × n` bytes (the target's perhaps
 * summarised already). Duplicates on the source (one key on two rows) count once.
 */
export function compareKeySets(
  source: Uint8Array,
  target: Uint8Array | SummarisedKeys,
): KeySetDifference {
  checkLength(source);
  // Buckets of about 16 hashes: a few differences among a million keys are found in two
  // passes over each side, summarising all buckets and gathering those that differ.
  const targetSide =
    target instanceof Uint8Array
      ? summariseKeys(target, Math.max(source.length, target.length) / HASH_BYTES)
      : target;
  const { bits, words: targetWords, summary: targetSummary } = targetSide;
  const sourceWords = wordsOf(source);
  const sourceSummary = summarise(sourceWords, bits);
  const flagged = new Uint8Array(1 << bits);
  for (let b = 0; b < 1 << bits; b++)
    for (let k = 3 * b; k < 3 * b + 3; k++)
      if (sourceSummary[k] !== targetSummary[k]) flagged[b] = 1;
  const s = sortHashes(gather(sourceWords, flagged, bits), bits);
  const t = sortHashes(gather(targetWords, flagged, bits), bits);
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
