/**
 * Merges two streams of (key, hash) rows, each sorted by key, into the keys that differ: only on
 * the source, only on the target, or on both with another hash. Pure: iterables in, differences
 * out; memory holds one batch per side. Rows come in batches (one per network chunk) so that the
 * merge runs synchronously between awaits; a million rows per side take a fraction of a second.
 *
 * Keys are tuples of integers in decimal text, compared numerically without parsing them.
 */
export interface KeyHashRow {
  readonly key: readonly string[];
  readonly hash: string;
}

export type KeyDifference =
  | { readonly kind: 'new'; readonly key: readonly string[] }
  | { readonly kind: 'changed'; readonly key: readonly string[] }
  | { readonly kind: 'missing'; readonly key: readonly string[] };

/** Compares two decimal integers given as text: negative, zero or positive. */
export function compareIntegerText(a: string, b: string): number {
  const negativeA = a.startsWith('-');
  const negativeB = b.startsWith('-');
  if (negativeA !== negativeB) return negativeA ? -1 : 1;
  const magnitude = a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  return negativeA ? -magnitude : magnitude;
}

export function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const order = compareIntegerText(a[i] as string, b[i] as string);
    if (order !== 0) return order;
  }
  return 0;
}

/** A key that a stream repeats: a duplicate key in the source data. */
export class RepeatedKey extends Error {
  constructor(
    readonly side: 'source' | 'target',
    readonly key: readonly string[],
  ) {
    super(`the ${side} returned key (${key.join(', ')}) more than once`);
  }
}

/** Reads a stream of batches one row at a time, checking the rows ascend strictly. */
class Cursor {
  private batch: readonly KeyHashRow[] = [];
  private index = 0;
  private previous: readonly string[] | undefined;
  private readonly batches: AsyncIterator<readonly KeyHashRow[]>;
  done = false;

  constructor(
    batches: AsyncIterable<readonly KeyHashRow[]>,
    private readonly side: 'source' | 'target',
  ) {
    this.batches = batches[Symbol.asyncIterator]();
  }

  /** The current row; only valid when not done and `ready()` returned true. */
  get row(): KeyHashRow {
    return this.batch[this.index] as KeyHashRow;
  }

  /** Whether a row is at hand without waiting. */
  ready(): boolean {
    return this.done || this.index < this.batch.length;
  }

  /** Waits for the next batch when the current one is used up. */
  async fill(): Promise<void> {
    let loaded = false;
    while (!this.done && this.index >= this.batch.length) {
      const next = await this.batches.next();
      if (next.done) this.done = true;
      else {
        this.batch = next.value;
        this.index = 0;
        loaded = true;
      }
    }
    if (loaded && !this.done) this.check();
  }

  advance(): void {
    this.index++;
    if (this.index < this.batch.length) this.check();
  }

  private check(): void {
    const key = this.row.key;
    const order = this.previous ? compareKeys(this.previous, key) : -1;
    if (order === 0) throw new RepeatedKey(this.side, key);
    if (order > 0) {
      throw new Error(
        `the ${this.side}'s key stream is not in ascending order at (${key.join(', ')})`,
      );
    }
    this.previous = key;
  }
}

/**
 * Walks both sorted streams at once and hands each difference to `found`. A key out of order on
 * either side means the servers disagree on ordering, which would make the merge wrong: it
 * throws rather than guess.
 */
export async function mergeKeyHashes(
  source: AsyncIterable<readonly KeyHashRow[]>,
  target: AsyncIterable<readonly KeyHashRow[]>,
  found: (difference: KeyDifference) => void,
): Promise<void> {
  const s = new Cursor(source, 'source');
  const t = new Cursor(target, 'target');
  await Promise.all([s.fill(), t.fill()]);
  while (!s.done || !t.done) {
    // Synchronous while both sides have rows at hand; await only to refill a batch.
    while (s.ready() && t.ready() && !(s.done && t.done)) {
      const order = s.done ? 1 : t.done ? -1 : compareKeys(s.row.key, t.row.key);
      if (order < 0) {
        found({ kind: 'new', key: s.row.key });
        s.advance();
      } else if (order > 0) {
        found({ kind: 'missing', key: t.row.key });
        t.advance();
      } else {
        if (s.row.hash !== t.row.hash) found({ kind: 'changed', key: s.row.key });
        s.advance();
        t.advance();
      }
    }
    await Promise.all([s.fill(), t.fill()]);
  }
}
