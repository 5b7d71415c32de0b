import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performSync } from '../../src/index.js';
import { createBuiltInPair, expectTargetEqualsSource } from './support/built-ins.js';
import { killAll, type Line, startChild, supportScript } from './support/child.js';
import {
  type Cluster,
  connectionsTo,
  idleInTransaction,
  sessionsOf,
  sleep,
  startCluster,
  waitFor,
  withApplicationName,
} from './support/cluster.js';
import { report, seededRandom } from './support/figures.js';

const TENANT = 1;
/** Two minutes by default; FAULTS_SOAK_MS shortens it while working on the test. */
const SOAK_MS = Number(process.env.FAULTS_SOAK_MS ?? 120_000);
const INTERVAL_MS = 200;
const MAX_RSS_GROWTH = 50 * 1024 * 1024;
const AGENT = 'soak-agent';
const MB = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

let cluster: Cluster;
let sourceUrl: string;
let targetUrl: string;
let source: pg.Pool;
let target: pg.Pool;

beforeAll(async () => {
  cluster = await startCluster();
  ({ sourceUrl, targetUrl } = await createBuiltInPair(cluster, {
    source: 'source',
    target: 'target',
  }));
  source = cluster.pool(sourceUrl, { max: 2 });
  target = cluster.pool(targetUrl, { max: 2 });
  // Some thousands of rows for two tenants, and sequences past them for the mutator's inserts.
  await source.query(`
    INSERT INTO register (register_id, tenant_id, name, register, unit, field_name)
      SELECT g, 1 + g % 3 / 2, 'Register ' || g, 3000 + g % 1000, (ARRAY['kWh', 'kW', 'V'])[1 + g % 3], 'field_' || g
        FROM generate_series(1000, 3999) AS g;
    INSERT INTO device_register (device_id, register_id)
      SELECT 1 + g % 3, g FROM generate_series(1000, 3999) AS g;
    INSERT INTO meter (meter_id, tenant_id, name, device_id, ip, port, active)
      SELECT g, 1 + g % 3 / 2, 'Meter ' || g, 1 + g % 3, '10.1.' || g / 250 % 250 || '.' || g % 250, 502, true
        FROM generate_series(1000, 1799) AS g;
    INSERT INTO meter_element (meter_element_id, meter_id, tenant_id, element, name)
      SELECT g * 10 + e, g, 1 + g % 3 / 2, chr(64 + e), 'Phase ' || chr(64 + e)
        FROM generate_series(1000, 1799) AS g, generate_series(1, 3) AS e;
    SELECT setval('register_register_id_seq', 100000), setval('meter_meter_id_seq', 100000),
           setval('meter_element_meter_element_id_seq', 1000000),
           setval('device_register_id_seq', (SELECT max(id) FROM device_register));
    ANALYZE;`);
});

afterAll(async () => {
  await killAll();
  await cluster?.stop();
});

describe('a sync agent on a 200 ms interval while another process changes the source', () => {
  it('keeps up for two minutes: the target ends equal to the source, memory stays flat and no connection leaks', async () => {
    const random = seededRandom('soak');
    const connectionsBefore = {
      source: await connectionsTo(cluster.admin, 'source'),
      target: await connectionsTo(cluster.admin, 'target'),
    };

    const agent = startChild(
      supportScript('soak-agent.ts'),
      {
        SOURCE_URL: withApplicationName(sourceUrl, AGENT),
        TARGET_URL: withApplicationName(targetUrl, AGENT),
        TENANT: String(TENANT),
        INTERVAL_MS: String(INTERVAL_MS),
      },
      ['--expose-gc'],
    );
    const started = await agent.waitForLine((line) => line.event === 'started');
    const mutator = startChild(supportScript('mutator.ts'), {
      SOURCE_URL: sourceUrl,
      SEED: String(random.seed),
    });
    await mutator.waitForLine((line) => line.event === 'ready');

    // Sessions sampled through the soak: the agent's never more than its pools allow.
    let mostSessions = 0;
    const connectionsDuring = { source: 0, target: 0 };
    const soakEnds = Date.now() + SOAK_MS;
    while (Date.now() < soakEnds) {
      await sleep(Math.min(5_000, Math.max(0, soakEnds - Date.now())));
      mostSessions = Math.max(mostSessions, (await sessionsOf(cluster.admin, AGENT)).length);
      for (const side of ['source', 'target'] as const) {
        const now = await connectionsTo(cluster.admin, side);
        connectionsDuring[side] = Math.max(connectionsDuring[side], now);
      }
      expect(agent.process.exitCode, agent.stderr()).toBeNull();
    }

    mutator.send('stop');
    const mutated = await mutator.waitForLine((line) => line.event === 'stopped');
    expect(await mutator.exited).toEqual({ code: 0, signal: null });
    agent.send('stop');
    const stopped = await agent.waitForLine((line) => line.event === 'stopped');

    // Between runs every pooled connection is back in its pool, and the server has no other.
    const pools = stopped.pools as Record<string, { total: number; idle: number; waiting: number }>;
    for (const side of ['source', 'target'] as const) {
      const pool = pools[side];
      expect(pool?.waiting).toBe(0);
      expect(pool?.idle).toBe(pool?.total);
      expect(await sessionsOf(cluster.admin, AGENT, side)).toHaveLength(pool?.total ?? -1);
    }
    expect(await idleInTransaction(cluster.admin, 'source')).toBe(0);
    expect(await idleInTransaction(cluster.admin, 'target')).toBe(0);
    agent.send('exit');
    await agent.waitForLine((line) => line.event === 'ended');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.stderr()).toBe('');

    // Every run completed, no entity failed, and the runs kept pace with the schedule.
    expect(stopped.errors).toEqual([]);
    expect(stopped.failedRuns).toBe(0);
    expect(stopped.failedEntities).toBe(0);
    expect(stopped.skippedRuns).toBe(0);
    expect(stopped.runs as number).toBeGreaterThan(SOAK_MS / 1000);

    const final = await performSync({ source, target, tenantId: TENANT });
    expect(final.ok).toBe(true);
    const rowsChecked = await expectTargetEqualsSource(source, target, TENANT);

    const connectionsAfter = await waitFor(
      'connections to return to their number before the soak',
      async () => ({
        source: await connectionsTo(cluster.admin, 'source'),
        target: await connectionsTo(cluster.admin, 'target'),
      }),
      (now) => now.source === connectionsBefore.source && now.target === connectionsBefore.target,
    );

    const memory = (line: Line) => line.memory as { rss: number; heapUsed: number };
    const rssStart = memory(started).rss;
    const rssEnd = memory(stopped).rss;
    report('soak', {
      soakSeconds: SOAK_MS / 1000,
      runs: stopped.runs,
      changesApplied: {
        inserted: stopped.inserted,
        updated: stopped.updated,
        deleted: stopped.deleted,
      },
      finalSync: Object.fromEntries(
        Object.entries(final.entities).map(([name, e]) => [
          name,
          e.inserted + e.updated + e.deleted,
        ]),
      ),
      sourceChanges: mutated.changes,
      rowsChecked,
      rssStartMB: MB(rssStart),
      rssEndMB: MB(rssEnd),
      heapUsedStartMB: MB(memory(started).heapUsed),
      heapUsedEndMB: MB(memory(stopped).heapUsed),
      agentSessionsAtMost: mostSessions,
      connectionsBefore,
      connectionsDuringAtMost: connectionsDuring,
      connectionsAfter,
    });
    expect(rssEnd - rssStart).toBeLessThan(MAX_RSS_GROWTH);
    expect(mostSessions).toBeLessThanOrEqual(8);
  });
});
