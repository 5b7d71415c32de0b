import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packedKeyBits, packedKeySql, unpackKey } from '../../src/db/pg/packed-key.js';
import type { TableDescription } from '../../src/db/types.js';

const target = (types: Record<string, string>): TableDescription =>
  new Map(
    Object.entries(types).map(([name, typeName]) => [
      name,
      { name, type: typeName, kind: 'scalar' as const, typeName },
    ]),
  );

describe('packedKeyBits', () => {
  it("takes the source's integer widths where every key column is an integer on both sides", () => {
    const both = target({ a: 'int8', b: 'int8', c: 'int2' });
    const source = new Map([
      ['a', 'integer'],
      ['b', 'smallint'],
      ['c', 'smallint'],
    ]);
    expect(packedKeyBits(['a', 'b', 'c'], source, both)).toEqual([32, 16, 16]);
    expect(packedKeyBits(['a'], new Map([['a', 'bigint']]), both)).toEqual([64]);
  });

  it('hashes keys wider than 64 bits, of other types, or of a type only one side has as an integer', () => {
    const ints = target({ a: 'int8', b: 'int4', t: 'text', n: 'numeric' });
    const source = new Map([
      ['a', 'bigint'],
      ['b', 'integer'],
      ['t', 'text'],
      ['n', 'integer'],
    ]);
    expect(packedKeyBits(['a', 'b'], source, ints)).toBeUndefined();
    expect(packedKeyBits(['b', 't'], source, ints)).toBeUndefined();
    // An integer on the source read into a numeric target column: its text is not the integer's.
    expect(packedKeyBits(['n'], source, ints)).toBeUndefined();
    // A domain over an integer is named by its own name: hashed.
    expect(packedKeyBits(['b'], new Map([['b', 'meter_number']]), ints)).toBeUndefined();
    expect(packedKeyBits(['b'], new Map(), ints)).toBeUndefined();
  });
});

describe('packedKeySql', () => {
  it('casts only the values that may not fit their bits, and masks all but the highest', () => {
    expect(
      packedKeySql(
        [
          { value: 'a', fits: true },
          { value: 'b', fits: false },
        ],
        [32, 32],
      ),
    ).toBe('((a)::int8 << 32) | ((b)::int4::int8 & 4294967295::int8)');
    expect(packedKeySql([{ value: 'a', fits: false }], [64])).toBe('(a)::int8');
  });
});

describe('unpackKey', () => {
  // Every layout of 16-, 32- and 64-bit columns that fits 64 bits, as packedKeyBits gives them.
  const layouts: number[][] = [];
  const grow = (layout: number[]) => {
    if (layout.length > 0) layouts.push(layout);
    for (const width of [16, 32, 64])
      if (layout.reduce((sum, w) => sum + w, 0) + width <= 64) grow([...layout, width]);
  };
  grow([]);
  const valueWithin = (width: number) =>
    fc.bigInt({ min: -(1n << BigInt(width - 1)), max: (1n << BigInt(width - 1)) - 1n });

  it('gives back every value of every layout, as PostgreSQL packs them', () => {
    expect(layouts.length).toBeGreaterThan(10);
    for (const layout of layouts)
      fc.assert(
        fc.property(
          fc.tuple(...layout.map(valueWithin)),
          fc.nat({ max: 3 }),
          (values, position) => {
            // As packedKeySql: the first value sign-extended and shifted, the others masked.
            let shift = layout.reduce((sum, w) => sum + w, 0);
            let whole = 0n;
            values.forEach((value, i) => {
              const width = layout[i] as number;
              shift -= width;
              const placed = i === 0 ? value : value & ((1n << BigInt(width)) - 1n);
              whole |= placed << BigInt(shift);
            });
            const bytes = new Uint8Array(8 * 4);
            new DataView(bytes.buffer).setBigUint64(position * 8, BigInt.asUintN(64, whole));
            expect(unpackKey(bytes, position, layout)).toEqual(values.map(String));
          },
        ),
        { numRuns: 300, examples: [[layout.map((w) => -(1n << BigInt(w - 1))), 0] as never] },
      );
  });
});
