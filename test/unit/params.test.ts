import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { textArrayParameter } from '../../src/db/pg/params.js';

// node-postgres's own encoding of an array parameter, which the literal must equal.
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => unknown;
};

describe('textArrayParameter', () => {
  it("writes the literal node-postgres writes for any texts and NULLs: quotes, backslashes, braces, commas, 'NULL'", () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.constantFrom('', 'NULL', 'null', '"', '\\', '\\"', '{}', 'a,b', ' x ', '{"a"}'),
    );
    fc.assert(
      fc.property(fc.array(text, { maxLength: 20 }), (texts) => {
        expect(textArrayParameter(texts)).toBe(prepareValue(texts));
        const withNulls = texts.map((text, i) => (i % 3 === 1 ? null : text));
        expect(textArrayParameter(withNulls)).toBe(prepareValue(withNulls));
      }),
      { numRuns: 2000 },
    );
  });

  it('leaves values that are not texts to node-postgres', () => {
    const mixed = ['1', 2, null];
    expect(textArrayParameter(mixed)).toBe(mixed);
  });
});
