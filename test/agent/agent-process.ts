/**
 * One sync agent in a process of its own, for the cross-process tests. Connects, prints `ready`,
 * waits for a line on stdin, triggers one sync, prints each run event as a JSON line with the
 * time it happened, and exits. Every source query is delayed so the run holds the lock a while.
 *
 *   SOURCE_URL=… TARGET_URL=… LOCK=skip|wait QUERY_DELAY_MS=150 tsx test/agent/agent-process.ts
 */
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createSyncAgent, type PgPool } from '../../src/index.js';

const source = new pg.Pool({ connectionString: process.env.SOURCE_URL, max: 2 });
const target = new pg.Pool({ connectionString: process.env.TARGET_URL, max: 2 });
const delay = Number(process.env.QUERY_DELAY_MS ?? 150);

const slowSource: PgPool = {
  async connect() {
    const client = await source.connect();
    return {
      async query(config) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        return client.query(config as pg.QueryConfig);
      },
      release: (error) => client.release(error),
    };
  },
};

const agent = createSyncAgent({
  source: slowSource,
  target,
  tenantId: 1,
  lock: process.env.LOCK === 'wait' ? 'wait' : true,
});
const print = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);
agent.on('run-start', () => print({ event: 'run-start' }));
agent.on('run-end', ({ result }) => print({ event: 'run-end', ok: result.ok }));
agent.on('run-skipped', ({ error }) => print({ event: 'run-skipped', error: error.name }));
agent.on('run-failed', ({ error }) => print({ event: 'run-failed', error: error.message }));

// Both connections are opened before `ready`, so `go` starts both runs at the same moment.
await Promise.all([source.query('SELECT 1'), target.query('SELECT 1')]);
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const _line of lines) break;
await agent.triggerSync().catch(() => undefined);
await agent.stop();
await Promise.all([source.end(), target.end()]);
