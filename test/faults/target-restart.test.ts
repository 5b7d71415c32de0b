import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createSyncAgent,
  type SyncAgent,
  type SyncAgentEvent,
  syncSchemaSql,
} from '../../src/index.js';
import { clientSystemSchemaSql, seedClientSystem } from '../../src/sample/index.js';
import { expectTargetEqualsSource } from './support/built-ins.js';
import {
  type Cluster,
  sessionsOf,
  startCluster,
  waitFor,
  withApplicationName,
} from './support/cluster.js';
import { report } from './support/figures.js';

const TENANT = 1;

// The source on a server of its own, so restarting the target's server leaves it alone.
let sourceCluster: Cluster;
let targetCluster: Cluster;
let round = 0;
const agents: SyncAgent[] = [];
const uncaught: unknown[] = [];
const recordUncaught = (error: unknown) => uncaught.push(error);
const figures = {
  restarts: 0,
  failedRunsReported: 0,
  poolErrorsAbsorbed: 0,
  rowsChecked: 0,
  inFlightRun: '',
};

beforeAll(async () => {
  [sourceCluster, targetCluster] = await Promise.all([startCluster(), startCluster()]);
  process.on('uncaughtException', recordUncaught);
  process.on('unhandledRejection', recordUncaught);
});

afterAll(async () => {
  process.off('uncaughtException', recordUncaught);
  process.off('unhandledRejection', recordUncaught);
  await Promise.all(agents.map((agent) => agent.stop()));
  report('target-restart', figures);
  await Promise.all([sourceCluster?.stop(), targetCluster?.stop()]);
});

beforeEach(() => {
  uncaught.length = 0;
});

afterEach(() => {
  // A connection the restart killed must never end the agent's process.
  expect(uncaught.map(String), 'uncaught errors and unhandled rejections').toEqual([]);
});

/** A synced pair and an agent on an interval; every event is kept with its time. */
async function agentOnInterval(interval: number) {
  round++;
  const sourceUrl = await sourceCluster.createDatabase(`source_${round}`);
  const targetUrl = await targetCluster.createDatabase(`target_${round}`);
  const application = `restart-agent-${round}`;
  const source = sourceCluster.pool(withApplicationName(sourceUrl, application));
  // As node-postgres asks of every pool: a listener for errors of idle connections, which a
  // restart produces. Counted, to see the restart reach the pool.
  const target = targetCluster.pool(withApplicationName(targetUrl, application));
  target.on('error', () => figures.poolErrorsAbsorbed++);
  await source.query(clientSystemSchemaSql);
  await seedClientSystem(source, [TENANT, 2]);
  await target.query(syncSchemaSql);

  const events: { event: SyncAgentEvent; at: number }[] = [];
  const agent = createSyncAgent({
    source,
    target,
    tenantId: TENANT,
    interval,
    runOnStart: true,
    onEvent: (event) => events.push({ event, at: Date.now() }),
  });
  agents.push(agent);
  /** The first event from index `from` on that `match` accepts. */
  const eventAfter = (
    from: number,
    match: (event: SyncAgentEvent) => boolean,
    timeoutMs = 30_000,
  ) =>
    waitFor(
      'an agent event',
      async () => events.slice(from).find(({ event }) => match(event)),
      (found) => found !== undefined,
      timeoutMs,
    ).then((found) => found?.event as SyncAgentEvent);
  const goodRun = (event: SyncAgentEvent) => event.type === 'run-end' && event.result.ok;
  await eventAfter(0, goodRun);
  return { source, target, agent, events, eventAfter, goodRun, application, targetUrl };
}

async function changeSource(source: pg.Pool) {
  await source.query(`UPDATE register SET unit = 'MWh' WHERE register_id = 101;
    INSERT INTO register (register_id, tenant_id, name, register, unit) VALUES (150, 1, 'Added', 5000, 'kW');`);
}

describe('the target database restarted under a running agent', () => {
  it('between two scheduled runs: the next scheduled run succeeds with the same agent and pools', async () => {
    const { source, target, agent, events, eventAfter, goodRun, application } =
      await agentOnInterval(1_000);
    const pidsBefore = (await sessionsOf(targetCluster.admin, application)).map((s) => s.pid);
    expect(pidsBefore.length).toBeGreaterThan(0);
    // Right after a run ends, so the change and the restart fall in the gap before the next one.
    await eventAfter(events.length, (event) => event.type === 'run-end');
    const restartFrom = events.length;
    await changeSource(source);
    await targetCluster.server.control('restart');
    figures.restarts++;

    const next = await eventAfter(restartFrom, goodRun);
    expect(next.type === 'run-end' && next.result.entities.register).toMatchObject({
      status: 'ok',
      inserted: 1,
      updated: 1,
    });
    expect(agent.status()).toMatchObject({ lastError: undefined, stopped: false });
    // Runs due while the server was down failed into status and events, and nothing else.
    const failed = events.slice(restartFrom).filter(({ event }) => event.type === 'run-failed');
    figures.failedRunsReported += failed.length;
    const pidsAfter = (await sessionsOf(targetCluster.admin, application)).map((s) => s.pid);
    expect(pidsAfter.filter((pid) => pidsBefore.includes(pid))).toEqual([]);
    figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
    await agent.stop();
  });

  it('while a run is in flight: that run ends as a failure the agent reports (or goes through on a retry), and the next scheduled run succeeds', async () => {
    const { source, target, agent, events, eventAfter, goodRun, application, targetUrl } =
      await agentOnInterval(300);
    // A lock on the target's register table parks the next run inside its register step.
    const locker = targetCluster.pool(targetUrl, { max: 1 });
    const held = await locker.connect();
    held.on('error', () => undefined); // the restart ends this session too
    await held.query('BEGIN; LOCK TABLE register IN ACCESS EXCLUSIVE MODE');
    await changeSource(source);
    const parkedFrom = events.length;
    await waitFor(
      'a run to wait for the register table',
      () => sessionsOf(targetCluster.admin, application),
      (sessions) => sessions.some((session) => session.waitEventType === 'Lock'),
    );
    await targetCluster.server.control('restart');
    figures.restarts++;
    held.release(true);

    const parked = await eventAfter(
      parkedFrom,
      (event) => event.type === 'run-failed' || event.type === 'run-end',
    );
    if (parked.type === 'run-end' && parked.result.ok) {
      // The server was back within the retries: register went through on a later attempt.
      const register = parked.result.entities.register;
      expect(register?.attempts).toBeGreaterThan(1);
      expect(register?.failedAttempts.every((failed) => failed.transient)).toBe(true);
      figures.inFlightRun = `retried: ${register?.failedAttempts.map((f) => f.message).join('; ')}`;
    } else if (parked.type === 'run-end') {
      expect(parked.result.entities.register?.status).toBe('failed');
      expect(parked.result.entities.register?.error?.message).toMatch(/^register: /);
      figures.inFlightRun = parked.result.entities.register?.error?.message ?? '';
    } else {
      expect(parked.type).toBe('run-failed');
      figures.inFlightRun = parked.type === 'run-failed' ? parked.error.message : '';
    }
    figures.failedRunsReported++;

    const next = await eventAfter(parkedFrom, goodRun);
    expect(next.type === 'run-end' && next.result.entities.register?.status).toBe('ok');
    expect(agent.status()).toMatchObject({ lastError: undefined, stopped: false });
    figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
    await agent.stop();
  });
});
