import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareIntegerText,
  type KeyDifference,
  mergeKeyHashes,
  RepeatedKey,
} from '../../src/diff/merge.js';

/** The rows in batches of two or three, as network chunks would cut them. */
async function* stream(rows: [number[], string][]) {
  for (let i = 0; i < rows.length; i += 2 + (i % 2)) {
    yield rows.slice(i, i + 2 + (i % 2)).map(([key, hash]) => ({ key: key.map(String), hash }));
  }
}

async function differences(source: [number[], string][], target: [number[], string][]) {
  const found: KeyDifference[] = [];
  await mergeKeyHashes(stream(source), stream(target), (d) => {
    found.push(d);
  });
  return found.map((d) => `${d.kind}:${d.key.join('/')}`);
}

describe('merging two key-ordered (key, hash) streams', () => {
  it('reports new, changed and missing keys', async () => {
    expect(
      await differences(
        [
          [[1, 1], 'a'],
          [[1, 2], 'b'],
          [[2, 1], 'c'],
        ],
        [
          [[1, 1], 'a'],
          [[1, 2], 'x'],
          [[3, 1], 'd'],
        ],
      ),
    ).toEqual(['changed:1/2', 'new:2/1', 'missing:3/1']);
  });

  it('compares integers by value, not as text', () => {
    expect(compareIntegerText('9', '10')).toBeLessThan(0);
    expect(compareIntegerText('-10', '-9')).toBeLessThan(0);
    expect(compareIntegerText('-1', '0')).toBeLessThan(0);
    expect(compareIntegerText('9223372036854775807', '9223372036854775806')).toBeGreaterThan(0);
    expect(compareIntegerText('42', '42')).toBe(0);
  });

  it('finds exactly the keys that differ, for any two tables (property)', async () => {
    const table = fc
      .uniqueArray(fc.tuple(fc.integer({ min: -50, max: 50 }), fc.integer({ min: 0, max: 3 })), {
        selector: ([a, b]) => `${a}/${b}`,
        maxLength: 40,
      })
      .chain((keys) =>
        fc.tuple(
          ...keys.map((key) =>
            fc.constantFrom('h1', 'h2').map((hash): [number[], string] => [key, hash]),
          ),
        ),
      );
    await fc.assert(
      fc.asyncProperty(table, table, async (source, target) => {
        const order = (rows: [number[], string][]) =>
          [...rows].sort(
            ([a], [b]) =>
              (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number),
          );
        const expected: string[] = [];
        const targetByKey = new Map(target.map(([key, hash]) => [key.join('/'), hash]));
        const sourceKeys = new Set(source.map(([key]) => key.join('/')));
        for (const [key, hash] of order(source)) {
          const stored = targetByKey.get(key.join('/'));
          if (stored === undefined) expected.push(`new:${key.join('/')}`);
          else if (stored !== hash) expected.push(`changed:${key.join('/')}`);
        }
        for (const [key] of target)
          if (!sourceKeys.has(key.join('/'))) expected.push(`missing:${key.join('/')}`);
        const found = await differences(order(source), order(target));
        expect(found.sort()).toEqual(expected.sort());
      }),
    );
  });

  it('names a key the source repeats', async () => {
    const merging = differences(
      [
        [[1], 'a'],
        [[1], 'b'],
      ],
      [],
    );
    await expect(merging).rejects.toThrow(RepeatedKey);
    await expect(merging).rejects.toThrow('the source returned key (1) more than once');
  });

  it('refuses streams out of order rather than guess', async () => {
    await expect(
      differences(
        [],
        [
          [[2], 'a'],
          [[1], 'b'],
        ],
      ),
    ).rejects.toThrow(/target's key stream is not in ascending order at \(1\)/);
  });
});
