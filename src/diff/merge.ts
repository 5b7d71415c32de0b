/**
 * Merges two streams of (key, hash) rows, each sorted by key, into the keys that differ: only on
 * the source, only on the target, or on both with another hash. Pure: iterables in, differences
 * out; memory holds one batch per side. Rows come in batches (one per network chunk) so that the
 * merge runs synchronously between awaits; a million rows per side take a fraction of a second.
 *
 * Keys are tuples of text, each column ordered as `KeyOrder` says: integers in decimal text
 * numerically (without parsing them), everything else by code point (the order of
 * `COLLATE "C"` on UTF-8 text).
 */
export interface KeyHashRow {
  readonly key: readonly string[];
  readonly hash: string;
}

/** How one key column is ordered on both sides. */
export type KeyOrder = 'integer' | 'text';

export type KeyDifference<S extends KeyHashRow = KeyHashRow> =
  | { readonly kind: 'new'; readonly key: readonly string[]; readonly row: S }
  | { readonly kind: 'changed'; readonly key: readonly string[]; readonly row: S }
  | { readonly kind: 'missing'; readonly key: readonly string[] };

/** Compares two decimal integers given as text: negative, zero or positive. */
export function compareIntegerText(a: string, b: string): number {
  const negativeA = a.startsWith('-');
  const negativeB = b.startsWith('-');
  if (negativeA !== negativeB) return negativeA ? -1 : 1;
  const magnitude = a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  return negativeA ? -magnitude : magnitude;
}

/** How each key column of `entity` is ordered: integer types numerically, the rest as text. */
export function keyOrders(
  entity: { readonly key: readonly string[] },
  description: ReadonlyMap<
    string,
    { readonly typeName?: string | undefined; readonly type: string }
  >,
): KeyOrder[] {
  return entity.key.map((column) => {
    const info = description.get(column);
    const name = (info?.typeName ?? info?.type ?? '').toLowerCase();
    return INTEGER_TYPES.has(name) ? 'integer' : 'text';
  });
}

const INTEGER_TYPES = new Set(['int2', 'int4', 'int8', 'smallint', 'integer', 'bigint']);

/** Compares two strings by code point (UTF-16 code units compare surrogates out of order). */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800–DFFF) encode code points above FFFF: move them above E000–FFFF.
    if (x >= 0xd800) x += x >= 0xe000 ? -0x800 : 0x2000;
    if (y >= 0xd800) y += y >= 0xe000 ? -0x800 : 0x2000;
    return x - y;
  }
  return a.length - b.length;
}

/** Compares two keys column by column in their orders (integer when `orders` is omitted). */
export function compareKeys(
  a: readonly string[],
  b: readonly string[],
  orders?: readonly KeyOrder[],
): number {
  for (let i = 0; i < a.length; i++) {
    const order =
      orders?.[i] === 'text'
        ? compareCodePoints(a[i] as string, b[i] as string)
        : compareIntegerText(a[i] as string, b[i] as string);
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
class Cursor<R extends KeyHashRow> {
  private batch: readonly R[] = [];
  private index = 0;
  private previous: readonly string[] | undefined;
  private readonly batches: AsyncIterator<readonly R[]>;
  done = false;

  constructor(
    batches: AsyncIterable<readonly R[]>,
    private readonly side: 'source' | 'target',
    private readonly orders: readonly KeyOrder[] | undefined,
  ) {
    this.batches = batches[Symbol.asyncIterator]();
  }

  /** The current row; only valid when not done and `ready()` returned true. */
  get row(): R {
    return this.batch[this.index] as R;
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
    const order = this.previous ? compareKeys(this.previous, key, this.orders) : -1;
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
export async function mergeKeyHashes<S extends KeyHashRow>(
  source: AsyncIterable<readonly S[]>,
  target: AsyncIterable<readonly KeyHashRow[]>,
  found: (difference: KeyDifference<S>) => void | Promise<void>,
  orders?: readonly KeyOrder[],
): Promise<void> {
  const s = new Cursor(source, 'source', orders);
  const t = new Cursor(target, 'target', orders);
  await Promise.all([s.fill(), t.fill()]);
  while (!s.done || !t.done) {
    // Synchronous while both sides have rows at hand; await only to refill a batch.
    while (s.ready() && t.ready() && !(s.done && t.done)) {
      const order = s.done ? 1 : t.done ? -1 : compareKeys(s.row.key, t.row.key, orders);
      let pending: unknown;
      if (order < 0) {
        pending = found({ kind: 'new', key: s.row.key, row: s.row });
        s.advance();
      } else if (order > 0) {
        pending = found({ kind: 'missing', key: t.row.key });
        t.advance();
      } else {
        if (s.row.hash !== t.row.hash)
          pending = found({ kind: 'changed', key: s.row.key, row: s.row });
        s.advance();
        t.advance();
      }
      // A consumer that flushes a batch of changes makes the walk wait for it.
      if (pending instanceof Promise) await pending;
    }
    await Promise.all([s.fill(), t.fill()]);
  }
}
