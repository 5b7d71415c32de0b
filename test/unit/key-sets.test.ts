import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeySets, summariseKeys, unspreadAt } from '../../src/diff/key-sets.js';

function pack(hashes: readonly bigint[]): Uint8Array {
  const bytes = new Uint8Array(hashes.length * 8);
  const view = new DataView(bytes.buffer);
  hashes.forEach((hash, i) => {
    view.setBigUint64(i * 8, hash, false);
  });
  return bytes;
}

/** The same answer the slow way, by value. */
function naive(source: readonly bigint[], target: readonly bigint[]) {
  const onSource = new Set(source);
  const onTarget = new Set(target);
  const times = new Map<bigint, number>();
  for (const hash of target) times.set(hash, (times.get(hash) ?? 0) + 1);
  return {
    targetOnly: target.flatMap((hash, i) => (onSource.has(hash) ? [] : [i])),
    sourceOnly: [...onSource].filter((hash) => !onTarget.has(hash)).length,
    ambiguous: [...times].some(([hash, count]) => count > 1 && onSource.has(hash)),
  };
}

// Small numbers make patterns (consecutive hashes) and shared buckets common; full 64-bit ones
// spread over every bucket; a fixed top makes one bucket crowded.
const hash = fc.oneof(
  fc.bigInt({ min: 0n, max: 31n }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: 0n, max: 63n }).map((low) => (0xabcdn << 48n) | low),
);

/**
 * A target's keys are unique, so are their hashes but by a coincidence; the source may repeat a
 * key. The source: some target keys (some twice), and others.
 */
const sides = fc
  .tuple(
    fc.uniqueArray(hash, { maxLength: 150 }),
    fc.array(fc.nat(), { maxLength: 200 }),
    fc.array(hash, { maxLength: 40 }),
  )
  .map(([target, picks, extra]) => {
    const source = [
      ...picks.flatMap((i) => (target.length > 0 ? [target[i % target.length] as bigint] : [])),
      ...extra,
    ];
    return { source, target };
  });

describe('compareKeySets', () => {
  it('agrees with a comparison by value, whatever the hashes', () => {
    fc.assert(
      fc.property(sides, ({ source, target }) => {
        expect(compareKeySets(pack(source), pack(target))).toEqual(naive(source, target));
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees on sets large enough to fill many buckets', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), {
          minLength: 500,
          maxLength: 5000,
        }),
        fc.array(fc.nat(), { maxLength: 300 }),
        fc.array(hash, { maxLength: 100 }),
        (target, dropped, extra) => {
          const gone = new Set(dropped.map((i) => i % target.length));
          const source = [...target.filter((_, i) => !gone.has(i)), ...extra];
          expect(compareKeySets(pack(source), pack(target))).toEqual(naive(source, target));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('does not take hashes with a pattern for equal ones', () => {
    const base = 12379550950711361536n;
    const difference = compareKeySets(pack([base + 5n, base + 10n]), pack([base + 2n, base + 13n]));
    expect(difference).toEqual({ targetOnly: [0, 1], sourceOnly: 2, ambiguous: false });
  });

  it('says when two target keys share a hash the source holds', () => {
    expect(compareKeySets(pack([7n]), pack([7n, 7n, 9n]))).toEqual({
      targetOnly: [2],
      sourceOnly: 0,
      ambiguous: true,
    });
    expect(compareKeySets(pack([9n]), pack([7n, 7n, 9n])).ambiguous).toBe(false);
  });

  it('agrees where the source repeats keys on a hundred thousand rows, all in one bucket', () => {
    // 2,000 keys of one leading 16 bits, each on 50 rows, in falling order: a bucket sorted by
    // comparison, where insertion would take billions of moves.
    const key = (i: number) => (0x1234n << 48n) | BigInt(2_000 - i);
    const source = Array.from({ length: 100_000 }, (_, i) => key(i % 2_000));
    const target = [key(0), key(1_999), 7n];
    expect(compareKeySets(pack(source), pack(target))).toEqual({
      targetOnly: [2],
      sourceOnly: 1_998,
      ambiguous: false,
    });
  });

  it('finds the one key deleted among a million', () => {
    const target = new Uint8Array(8_000_000);
    // getRandomValues fills 64 KiB at most a call.
    for (let at = 0; at < target.length; at += 65_536)
      crypto.getRandomValues(target.subarray(at, at + 65_536));
    const source = new Uint8Array(target.subarray(0, 8 * 999_999));
    source.set(target.subarray(8 * 999_999), 8 * 123_456);
    const difference = compareKeySets(source, target);
    expect(difference).toEqual({ targetOnly: [123_456], sourceOnly: 0, ambiguous: false });
  });

  it('rejects a byte count that is not a whole number of hashes', () => {
    expect(() => compareKeySets(new Uint8Array(7), new Uint8Array(8))).toThrow(/8 bytes each/);
  });
});

describe('summariseKeys', () => {
  it('gives the answer of the hashes themselves, whichever sides it summarised, for any size', () => {
    fc.assert(
      fc.property(
        sides,
        fc.nat({ max: 5000 }),
        fc.constantFrom('source', 'target', 'both'),
        fc.boolean(),
        ({ source, target }, planned, summarised, grouped) => {
          const side = (hashes: bigint[], which: 'source' | 'target') =>
            summarised === which || summarised === 'both'
              ? summariseKeys(pack(hashes), { keys: planned, grouped })
              : pack(hashes);
          expect(compareKeySets(side(source, 'source'), side(target, 'target'))).toEqual(
            naive(source, target),
          );
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('reads hashes wherever they start in their buffer', () => {
    const hashes = [3n, 2n ** 63n + 5n, 77n];
    const shifted = new Uint8Array(8 * hashes.length + 3);
    shifted.set(pack(hashes), 3);
    const unaligned = shifted.subarray(3);
    expect(compareKeySets(pack([3n]), summariseKeys(unaligned))).toEqual(naive([3n], hashes));
  });

  it('finds the keys deleted among a million from a side grouped by bucket as from one not', () => {
    const target = new Uint8Array(8_000_000);
    for (let at = 0; at < target.length; at += 65_536)
      crypto.getRandomValues(target.subarray(at, at + 65_536));
    // 2,500 target keys gone from the source, 2,500 new ones there.
    const source = new Uint8Array(target);
    for (let at = 0; at < 8 * 2_500; at += 65_536)
      crypto.getRandomValues(
        source.subarray(8 * 1_000 + at, 8 * 1_000 + Math.min(8 * 2_500, at + 65_536)),
      );
    const plain = compareKeySets(summariseKeys(source), summariseKeys(target));
    const grouped = compareKeySets(summariseKeys(source), summariseKeys(target, { grouped: true }));
    expect(plain.targetOnly).toEqual(Array.from({ length: 2_500 }, (_, i) => 1_000 + i));
    expect(plain.sourceOnly).toBe(2_500);
    expect(grouped).toEqual(plain);
  });

  it('compares packed keys exactly, whichever side is grouped or spread in place', () => {
    fc.assert(
      fc.property(
        sides,
        fc.nat({ max: 5000 }),
        fc.boolean(),
        fc.boolean(),
        ({ source, target }, planned, grouped, inPlace) => {
          const side = (keys: bigint[], group: boolean, spreadInPlace = false) => {
            const bytes = pack(keys);
            const summarised = summariseKeys(bytes, {
              keys: planned,
              grouped: group,
              packed: true,
              spreadInPlace,
            });
            // In place, the spread keys are where the packed ones were: nothing new to allocate.
            expect(summarised.words.buffer === bytes.buffer).toBe(spreadInPlace);
            return summarised;
          };
          expect(compareKeySets(side(source, false, inPlace), side(target, grouped))).toEqual(
            naive(source, target),
          );
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('turns packed keys spread in place back where asked, and leaves hashes as they are', () => {
    fc.assert(
      fc.property(sides, fc.boolean(), fc.boolean(), ({ source, target }, grouped, packed) => {
        const bytes = pack(target);
        const original = new Uint8Array(bytes);
        const keys = Math.max(source.length, target.length);
        const side = summariseKeys(bytes, { keys, grouped, packed, spreadInPlace: true });
        // Packed keys are spread over the very bytes they came in.
        expect(side.words.buffer === bytes.buffer).toBe(true);
        const { targetOnly } = compareKeySets(summariseKeys(pack(source), { keys, packed }), side);
        unspreadAt(side, targetOnly);
        const keyAt = (of: Uint8Array, i: number) => [...of.subarray(8 * i, 8 * i + 8)];
        // Hashes are never spread; packed keys are, and those asked for are turned back.
        for (const i of packed ? targetOnly : target.map((_, i) => i))
          expect(keyAt(bytes, i)).toEqual(keyAt(original, i));
      }),
      { numRuns: 1000 },
    );
  });

  it('spreads consecutive packed keys one to one and evenly over the buckets', () => {
    // A million keys of two 32-bit columns, as (site, register) pairs are numbered.
    const keys: bigint[] = [];
    for (let site = 1n; site <= 1_000n; site++)
      for (let register = 0n; register < 1_000n; register++) keys.push((site << 32n) | register);
    const packed = summariseKeys(pack(keys), { packed: true });
    const distinct = new Set<number>();
    let collisions = 0;
    // Distinct first words for nearly all, and no two keys with both words alike.
    const seen = new Map<number, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const first = packed.words[2 * i] as number;
      const second = packed.words[2 * i + 1] as number;
      const others = seen.get(first);
      if (others?.includes(second)) collisions += 1;
      if (others) others.push(second);
      else seen.set(first, [second]);
      distinct.add(first);
    }
    expect(collisions).toBe(0);
    expect(distinct.size).toBeGreaterThan(keys.length * 0.99);
    const counts = Array.from(
      { length: 1 << packed.bits },
      (_, b) => packed.summary[3 * b] as number,
    );
    // About 8 a bucket: spread as random hashes are (as many empty as chance leaves), none crowded.
    expect(counts.reduce((most, count) => Math.max(most, count), 0)).toBeLessThan(40);
    expect(counts.filter((count) => count === 0).length).toBeLessThan(counts.length / 500);
  });

  it('refuses two sides summarised for different sizes', () => {
    expect(() =>
      compareKeySets(
        summariseKeys(pack([1n]), { keys: 10 }),
        summariseKeys(pack([1n]), { keys: 10_000 }),
      ),
    ).toThrow(/one size/);
  });
});
