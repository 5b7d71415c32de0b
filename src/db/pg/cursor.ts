import { type PgClient, rowValues } from './pool.js';
import { quoteIdent, type Statement } from './sql.js';

/** Rows a FETCH brings: enough to keep round trips few, few enough to bound memory. */
export const FETCH_ROWS = 10_000;

let cursors = 0;

/**
 * The rows of a SELECT through a cursor, `FETCH_ROWS` at a time, each row as its values in
 * order. Between two batches the connection is free for other statements (the run's writes): a
 * cursor reads the snapshot it was declared in. Needs a transaction. The SELECT is declared with
 * its parameters over the extended protocol, which takes one statement only.
 *
 * A FETCH that brings fewer rows than asked for is the last: the cursor is closed, and `ended`
 * run, before its rows are yielded, so the connection is free once the consumer has them.
 */
export async function* cursorRows(
  client: PgClient,
  statement: Statement,
  ended?: () => Promise<void>,
): AsyncGenerator<unknown[][]> {
  const name = quoteIdent(`meter_sync_cursor_${++cursors}`);
  await client.query({
    text: `DECLARE ${name} NO SCROLL CURSOR FOR ${statement.text}`,
    values: statement.values,
    queryMode: 'extended',
  });
  let open = true;
  try {
    for (;;) {
      const result = await client.query({
        text: `FETCH FORWARD ${FETCH_ROWS} FROM ${name}`,
        rowMode: 'array',
      });
      const rows = result.rows.map(rowValues);
      if (rows.length < FETCH_ROWS) {
        open = false;
        await client.query({ text: `CLOSE ${name}` });
        await ended?.();
        if (rows.length > 0) yield rows;
        return;
      }
      yield rows;
    }
  } finally {
    // Left early (the consumer failed or stopped): the cursor goes; a failed transaction drops it anyway.
    if (open) await client.query({ text: `CLOSE ${name}` }).catch(() => undefined);
  }
}
