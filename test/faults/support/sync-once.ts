/**
 * One `performSync` of the bulk_reading entity in a process of its own, for the crash tests.
 * Loads and connects, prints `ready`, waits for a line on stdin (so the test can start it ahead
 * and time the run, not the start-up), then prints every sync event as a JSON line with the time
 * it happened, then the result, and exits. How the entity's rows were compared is printed as a
 * `compared` line as soon as it is known: `since` is the watermark of an incremental read, null
 * for a full comparison.
 *
 *   SOURCE_URL=… TARGET_URL=… tsx test/faults/support/sync-once.ts
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { performSync } from '../../../src/index.js';
import { bulkReading, TENANT } from './bulk-reading.js';

const source = new pg.Pool({ connectionString: process.env.SOURCE_URL, max: 2 });
const target = new pg.Pool({ connectionString: process.env.TARGET_URL, max: 2 });
const print = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);

try {
  await Promise.all([source.query('SELECT 1'), target.query('SELECT 1')]);
  print({ event: 'ready' });
  const input = createInterface({ input: process.stdin });
  await once(input, 'line');
  input.close();
  const result = await performSync({
    source,
    target,
    tenantId: TENANT,
    entities: [bulkReading],
    logger: {
      info() {},
      warn() {},
      error() {},
      debug(data, message) {
        if (message === 'entity compared')
          print({ event: 'compared', since: data.since ?? null, changed: data.changed ?? null });
      },
    },
    onEvent: (event) => {
      if (event.type === 'entity-progress')
        print({ event: event.type, phase: event.phase, rows: event.rows });
      else if (event.type === 'entity-end')
        print({
          event: event.type,
          status: event.result.status,
          error: event.result.error?.message,
        });
      else if (event.type !== 'run-end') print({ event: event.type });
    },
  });
  const entity = result.entities.bulk_reading;
  print({
    event: 'result',
    ok: result.ok,
    inserted: entity.inserted,
    updated: entity.updated,
    deleted: entity.deleted,
    detection: entity.detection,
  });
} finally {
  await Promise.all([source.end(), target.end()]);
}
