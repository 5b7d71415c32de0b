import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cursorRows, FETCH_ROWS } from '../../src/db/pg/cursor.js';
import type { PgClient } from '../../src/db/pg/pool.js';

/** A client whose cursor holds `rows` rows, recording each statement as it is sent. */
function cursorOver(rows: number, sent: string[]): PgClient {
  let fetched = 0;
  return {
    query: async ({ text }: { text: string }) => {
      sent.push(text.split(' ')[0] as string);
      if (!text.startsWith('FETCH')) return { rows: [] };
      const count = Math.min(FETCH_ROWS, rows - fetched);
      const batch = Array.from({ length: count }, (_, i) => [fetched + i]);
      fetched += count;
      return { rows: batch };
    },
  } as unknown as PgClient;
}

describe('cursorRows', () => {
  it('closes the cursor and ends before it hands over the last rows, whatever their number', async () => {
    const rowCounts = fc.oneof(
      fc.nat({ max: 3 * FETCH_ROWS + 5 }),
      fc.constantFrom(0, 1, FETCH_ROWS - 1, FETCH_ROWS, FETCH_ROWS + 1, 2 * FETCH_ROWS),
    );
    await fc.assert(
      fc.asyncProperty(rowCounts, async (rows) => {
        const sent: string[] = [];
        const seen: number[] = [];
        const statement = { text: 'SELECT 1', values: [] };
        const batches = cursorRows(cursorOver(rows, sent), statement, async () => {
          sent.push('ended');
        });
        let lastSeenWith: string[] = [];
        for await (const batch of batches) {
          for (const row of batch) seen.push(row[0] as number);
          lastSeenWith = [...sent];
        }
        expect(seen).toEqual(Array.from({ length: rows }, (_, i) => i));
        const fetches = Math.floor(rows / FETCH_ROWS) + 1;
        expect(sent).toEqual(['DECLARE', ...Array(fetches).fill('FETCH'), 'CLOSE', 'ended']);
        // The consumer had the last rows once the connection was free for its next statement;
        // after a full batch, only an empty FETCH tells that none are left.
        if (rows % FETCH_ROWS !== 0) expect(lastSeenWith).toEqual(sent);
        else if (rows > 0) expect(lastSeenWith).toEqual(sent.slice(0, -3));
      }),
      { numRuns: 60 },
    );
  });

  it('closes the cursor once, not ended, when the consumer stops early', async () => {
    const sent: string[] = [];
    const statement = { text: 'SELECT 1', values: [] };
    for await (const _batch of cursorRows(
      cursorOver(2 * FETCH_ROWS + 1, sent),
      statement,
      async () => {
        sent.push('ended');
      },
    ))
      break;
    expect(sent).toEqual(['DECLARE', 'FETCH', 'CLOSE']);
  });
});
