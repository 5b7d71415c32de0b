import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyOutByteas } from '../../src/db/pg/copy.js';
import type { PgClient } from '../../src/db/pg/pool.js';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** The bytes of a binary COPY of `rows`, each field's bytes or null, as PostgreSQL sends them. */
function binaryCopy(rows: readonly (readonly (Uint8Array | null)[])[], extension: number): Buffer {
  const parts: Buffer[] = [SIGNATURE, Buffer.alloc(4)];
  const extensionLength = Buffer.alloc(4);
  extensionLength.writeUInt32BE(extension);
  parts.push(extensionLength, Buffer.alloc(extension, 7));
  for (const row of rows) {
    const count = Buffer.alloc(2);
    count.writeInt16BE(row.length);
    parts.push(count);
    for (const field of row) {
      const length = Buffer.alloc(4);
      length.writeInt32BE(field === null ? -1 : field.length);
      parts.push(length);
      if (field !== null) parts.push(Buffer.from(field));
    }
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

/** `bytes` cut at `cuts` (positions in any order, repeats allowed). */
function chunked(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    if (to > from) chunks.push(bytes.subarray(from, to));
    from = Math.max(from, to);
  }
  return chunks;
}

/** A client whose COPY sends `chunks`, as pg-copy-streams hands them on. */
function clientSending(chunks: readonly Buffer[]): PgClient {
  return { query: () => Readable.from(chunks) } as unknown as PgClient;
}

const field = fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null });
const fields = fc.array(field, { minLength: 1, maxLength: 4 });
const cuts = fc.array(fc.nat(), { maxLength: 40 });

describe('copyOutByteas', () => {
  it('reads the one row whole however the bytes are cut, each field in a buffer of its own', async () => {
    await fc.assert(
      fc.asyncProperty(fields, fc.nat({ max: 12 }), cuts, async (row, extension, at) => {
        const read = await copyOutByteas(
          clientSending(chunked(binaryCopy([row], extension), at)),
          'COPY',
        );
        expect(read.map((bytes) => [...bytes])).toEqual(row.map((bytes) => [...(bytes ?? [])]));
        // Each starts its buffer, where 64-bit words are read in place.
        for (const bytes of read) expect(bytes.byteOffset).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a row cut short, wherever it is cut', async () => {
    await fc.assert(
      fc.asyncProperty(fields, cuts, fc.nat(), async (row, at, end) => {
        const bytes = binaryCopy([row], 0);
        const cut = bytes.subarray(0, end % bytes.length);
        await expect(copyOutByteas(clientSending(chunked(cut, at)), 'COPY')).rejects.toThrow(
          /no binary header|cut short|no row/,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('refuses no row and a second row', async () => {
    await expect(copyOutByteas(clientSending([binaryCopy([], 0)]), 'COPY')).rejects.toThrow(
      /no row/,
    );
    const two = binaryCopy([[new Uint8Array([1])], [new Uint8Array([2])]], 0);
    await expect(copyOutByteas(clientSending(chunked(two, [5, 23])), 'COPY')).rejects.toThrow(
      /more than one row/,
    );
    const otherFormat = Buffer.from('1\t2\n');
    await expect(copyOutByteas(clientSending([otherFormat]), 'COPY')).rejects.toThrow(
      /no binary header/,
    );
  });
});
