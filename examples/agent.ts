/**
 * A scheduled sync embedded in an agent: one run at start, then one every interval; each entity
 * reported as it finishes; a clean stop that waits for a run in flight.
 *
 *   npx tsx examples/agent.ts
 *
 * The databases are in memory (pg-mem, from meter-sync/testing) so this runs anywhere. In a real
 * agent pass `new pg.Pool({ connectionString })` for each side, and a schedule such as
 * `interval: 5 * 60_000` or `cron: '0,30 * * * *'`.
 */

import { createSyncAgent, type Logger } from 'meter-sync';
import { createTestDatabases } from 'meter-sync/testing';

const { source, target } = await createTestDatabases({ tenants: [7] });

const logger: Logger = {
  info: (data, message) => {
    if (message === 'entity synced') console.log(`  ${message}: ${JSON.stringify(data)}`);
  },
  warn: (data, message) => console.warn(`  warning: ${message}`, data.sampleKeys ?? ''),
  error: (data, message) => console.error(`  error: ${message}`, data.err),
};

const agent = createSyncAgent({
  source: source.pool,
  target: target.pool,
  tenantId: 7,
  interval: 200, // milliseconds between runs, counted from the end of the previous run
  runOnStart: true,
  logger,
});

agent.on('run-start', () => console.log('sync started'));
agent.on('run-end', ({ result }) => console.log(`sync finished: ${result.ok ? 'ok' : 'failed'}`));
agent.on('run-skipped', () => console.log('another process is syncing; this run is skipped'));
agent.on('run-failed', ({ error }) => console.error(`sync failed: ${error.message}`));

async function shutdown() {
  await agent.stop(); // waits for a run in flight; the pools are ours to end
  await Promise.all([source.pool.end(), target.pool.end()]);
}
process.once('SIGTERM', () => void shutdown());

const nextRun = () =>
  new Promise<void>((resolve) => {
    const off = agent.on('run-end', () => {
      off();
      resolve();
    });
  });

// For the example: let the first run happen, rename a register on the Client System, and let
// the next scheduled run carry the change.
await nextRun();
await source.pool.query('UPDATE register SET name = $1 WHERE register_id = $2', [
  'Active energy import (total)',
  701,
]);
await nextRun();

const { lastResult, nextRunAt } = agent.status();
console.log(
  `register: ${lastResult?.entities.register.updated} updated; next run due at ${nextRunAt?.toISOString()}`,
);
await shutdown();
