/**
 * A sync agent on a short interval in a process of its own, for the soak test; run with
 * `--expose-gc` so its memory can be measured after a collection. Prints JSON lines: `started`
 * after the first good run (with the memory then), a `sample` every few seconds, `stopped` after
 * `stop` on stdin (runs, memory, pools), `ended` after `exit` on stdin, once the pools are closed.
 *
 *   SOURCE_URL=… TARGET_URL=… TENANT=1 INTERVAL_MS=200 node --expose-gc --import tsx soak-agent.ts
 */
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createSyncAgent } from '../../../src/index.js';

const source = new pg.Pool({ connectionString: process.env.SOURCE_URL, max: 4 });
const target = new pg.Pool({ connectionString: process.env.TARGET_URL, max: 4 });
const poolErrors: string[] = [];
for (const pool of [source, target]) pool.on('error', (error) => poolErrors.push(error.message));

const print = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);
const collect = (global as { gc?: () => void }).gc ?? (() => undefined);
const memory = () => {
  collect();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed };
};
const pools = () =>
  Object.fromEntries(
    Object.entries({ source, target }).map(([side, pool]) => [
      side,
      { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount },
    ]),
  );

const tally = {
  runs: 0,
  failedRuns: 0,
  skippedRuns: 0,
  failedEntities: 0,
  inserted: 0,
  updated: 0,
  deleted: 0,
  errors: [] as string[],
};
let started: ReturnType<typeof memory> | undefined;

const agent = createSyncAgent({
  source,
  target,
  tenantId: Number(process.env.TENANT ?? 1),
  interval: Number(process.env.INTERVAL_MS ?? 200),
  runOnStart: true,
});
agent.on('run-end', ({ result }) => {
  tally.runs++;
  for (const [name, entity] of Object.entries(result.entities)) {
    tally.inserted += entity.inserted;
    tally.updated += entity.updated;
    tally.deleted += entity.deleted;
    if (entity.status === 'failed') {
      tally.failedEntities++;
      if (tally.errors.length < 5) tally.errors.push(`${name}: ${entity.error?.message}`);
    }
  }
  if (!started && result.ok) {
    started = memory();
    print({ event: 'started', memory: started });
  }
});
agent.on('run-failed', ({ error }) => {
  tally.failedRuns++;
  if (tally.errors.length < 5) tally.errors.push(error.message);
});
agent.on('run-skipped', () => {
  tally.skippedRuns++;
});

const sampling = setInterval(() => {
  const { rss, heapUsed } = process.memoryUsage();
  print({ event: 'sample', runs: tally.runs, rss, heapUsed, pools: pools() });
}, 5_000);

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (line === 'stop') {
    clearInterval(sampling);
    await agent.stop();
    print({ event: 'stopped', ...tally, memory: memory(), pools: pools(), poolErrors });
  } else if (line === 'exit') {
    break;
  }
}
input.close();
await Promise.all([source.end(), target.end()]);
print({ event: 'ended' });
