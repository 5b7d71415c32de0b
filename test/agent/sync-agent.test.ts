import { afterEach, describe, expect, it } from 'vitest';
import {
  AgentStoppedError,
  ConfigurationError,
  createSyncAgent,
  DatabaseError,
  DefinitionError,
  type SyncAgent,
} from '../../src/index.js';
import { createTestDatabases } from '../../src/testing/index.js';
import { gatedPool, nextEvents, recordEvents, unreachablePool, until } from './support.js';

const agents: SyncAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.stop()));
});
const track = <A extends SyncAgent>(agent: A): A => {
  agents.push(agent);
  return agent;
};

describe('sync agent on pg-mem', () => {
  it('runs once at start when asked and reports the run and each entity with counts', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const agent = track(
      createSyncAgent({ source: source.pool, target: target.pool, tenantId: 1, runOnStart: true }),
    );
    const events = recordEvents(agent);
    const seenAtEnd: unknown[] = [];
    agent.on('run-end', (event) => {
      const status = agent.status();
      seenAtEnd.push(status.running, status.lastResult === event.result);
    });
    const [end] = await nextEvents(agent, 'run-end');
    expect(seenAtEnd).toEqual([false, true]);

    expect(end?.result.ok).toBe(true);
    expect(
      events.map((event) => `${event.type} ${'entity' in event ? event.entity : ''}`.trim()),
    ).toEqual([
      'run-start',
      'entity-start device',
      'entity-end device',
      'entity-start meter',
      'entity-end meter',
      'entity-start register',
      'entity-end register',
      'entity-start device_register',
      'entity-end device_register',
      'run-end',
    ]);
    const registerEnd = events.find(
      (event) => event.type === 'entity-end' && event.entity === 'register',
    );
    expect(registerEnd).toMatchObject({ result: { status: 'ok', inserted: 4 } });
    const status = agent.status();
    expect(status).toMatchObject({ running: false, stopped: false, lastError: undefined });
    expect(status.lastResult?.entities.register.inserted).toBe(4);
    expect(status.nextRunAt).toBeUndefined();
  });

  it('runs on an interval counted from the end of the previous run, one run at a time', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const agent = track(
      createSyncAgent({ source: source.pool, target: target.pool, tenantId: 1, interval: 30 }),
    );
    const before = Date.now();
    expect(agent.status().nextRunAt?.getTime()).toBeGreaterThanOrEqual(before);
    const events = recordEvents(agent);
    await nextEvents(agent, 'run-end', 3);
    const runEvents = events.filter(
      (event) => event.type === 'run-start' || event.type === 'run-end',
    );
    expect(runEvents.slice(0, 6).map((event) => event.type)).toEqual([
      'run-start',
      'run-end',
      'run-start',
      'run-end',
      'run-start',
      'run-end',
    ]);
    const { nextRunAt, lastResult } = agent.status();
    expect(nextRunAt?.getTime()).toBeGreaterThanOrEqual(lastResult?.finishedAt.getTime() ?? 0);
    expect(lastResult?.entities.register).toMatchObject({ inserted: 0, unchanged: 4 });
  });

  it('triggerSync while a run is in flight returns that same run; no second run starts', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const slow = gatedPool(source.pool);
    const agent = track(createSyncAgent({ source: slow.pool, target: target.pool, tenantId: 1 }));
    const events = recordEvents(agent);

    const first = agent.triggerSync();
    const second = agent.triggerSync();
    expect(second).toBe(first);
    await until(() => slow.waiting() > 0);
    expect(agent.status().running).toBe(true);
    expect(agent.triggerSync()).toBe(first);

    slow.open();
    const result = await first;
    expect(result.entities.register.inserted).toBe(4);
    expect(events.filter((event) => event.type === 'run-start')).toHaveLength(1);
    expect(agent.status().running).toBe(false);
    const next = agent.triggerSync();
    expect(next).not.toBe(first);
    expect((await next).entities.register.unchanged).toBe(4);
  });

  it('stop() waits for the in-flight run, then runs no more and refuses triggerSync', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const slow = gatedPool(source.pool);
    const agent = createSyncAgent({
      source: slow.pool,
      target: target.pool,
      tenantId: 1,
      interval: 10,
      runOnStart: true,
    });
    const events = recordEvents(agent);
    await until(() => slow.waiting() > 0);

    let stopped = false;
    const stopping = agent.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stopped).toBe(false);
    expect(agent.status()).toMatchObject({ running: true, stopped: true, nextRunAt: undefined });

    slow.open();
    await stopping;
    expect(events.map((event) => event.type)).toContain('run-end');
    expect(agent.status()).toMatchObject({ running: false, stopped: true, nextRunAt: undefined });
    const count = events.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(events).toHaveLength(count);
    await expect(agent.triggerSync()).rejects.toBeInstanceOf(AgentStoppedError);
    await agent.stop();
  });

  it('a scheduled run that cannot reach a database is recorded, not thrown, and retried on schedule', async () => {
    const { target } = await createTestDatabases({ tenants: [1] });
    const agent = track(
      createSyncAgent({
        source: unreachablePool,
        target: target.pool,
        tenantId: 1,
        interval: 10,
        runOnStart: true,
      }),
    );
    const failures = await nextEvents(agent, 'run-failed', 2);
    expect(failures[0]?.error).toBeInstanceOf(DatabaseError);
    expect(failures[0]?.error.message).toMatch(/source.*ECONNREFUSED/);
    expect(agent.status().lastError).toBeInstanceOf(DatabaseError);
    expect(agent.status().lastResult).toBeUndefined();
    await expect(agent.triggerSync()).rejects.toBeInstanceOf(DatabaseError);
  });

  it('clears lastError once a run completes', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    let down = true;
    const flaky = {
      connect: () =>
        down ? Promise.reject(new Error('connection refused')) : source.pool.connect(),
    };
    const agent = track(createSyncAgent({ source: flaky, target: target.pool, tenantId: 1 }));
    await expect(agent.triggerSync()).rejects.toBeInstanceOf(DatabaseError);
    expect(agent.status().lastError).toBeInstanceOf(DatabaseError);
    down = false;
    await agent.triggerSync();
    expect(agent.status().lastError).toBeUndefined();
    expect(agent.status().lastResult?.ok).toBe(true);
  });

  it('runs on a cron schedule and reports when the next run is due', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const agent = track(
      createSyncAgent({
        source: source.pool,
        target: target.pool,
        tenantId: 1,
        cron: '* * * * * *',
      }),
    );
    const due = agent.status().nextRunAt;
    expect(due).toBeInstanceOf(Date);
    expect(due?.getTime()).toBeGreaterThan(Date.now() - 1);
    expect(due?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    const [end] = await nextEvents(agent, 'run-end');
    expect(end?.result.entities.register?.inserted).toBe(4);
  });

  it('a listener that throws is logged and does not disturb the run', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const warnings: string[] = [];
    const logger = {
      info() {},
      error() {},
      warn: (_data: Record<string, unknown>, message: string) => void warnings.push(message),
    };
    const agent = track(
      createSyncAgent({ source: source.pool, target: target.pool, tenantId: 1, logger }),
    );
    agent.on('entity-end', () => {
      throw new Error('listener bug');
    });
    const result = await agent.triggerSync();
    expect(result.ok).toBe(true);
    expect(warnings).toContain('sync agent listener threw; ignored');
  });

  it('stops delivering to a listener once it unsubscribes, and onEvent sees every event', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    const all: string[] = [];
    const agent = track(
      createSyncAgent({
        source: source.pool,
        target: target.pool,
        tenantId: 1,
        onEvent: (event) => all.push(event.type),
      }),
    );
    let ends = 0;
    const off = agent.on('run-end', () => {
      ends++;
    });
    await agent.triggerSync();
    off();
    await agent.triggerSync();
    expect(ends).toBe(1);
    expect(all.filter((type) => type === 'run-end')).toHaveLength(2);
  });

  it.each([
    [{ interval: 1000, cron: '* * * * *' }, /interval or cron, not both/],
    [{ interval: 0 }, /interval must be a whole number of milliseconds/],
    [{ interval: 1.5 }, /interval must be a whole number/],
    [{ cron: 'every monday' }, /cron "every monday" is not a valid cron expression/],
    [{ cron: '* * * * *', timezone: 'Mars/Olympus' }, /in time zone "Mars\/Olympus"/],
    [{ timezone: 'Europe/Berlin' }, /timezone applies to cron/],
  ])('rejects a bad schedule at creation: %o', async (schedule, message) => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    expect(() =>
      createSyncAgent({ source: source.pool, target: target.pool, tenantId: 1, ...schedule }),
    ).toThrow(message);
    expect(() =>
      createSyncAgent({ source: source.pool, target: target.pool, tenantId: 1, ...schedule }),
    ).toThrow(ConfigurationError);
  });

  it('rejects run options at creation, before the first run', async () => {
    const { source, target } = await createTestDatabases({ tenants: [1] });
    expect(() =>
      createSyncAgent({ source: source.pool, target: target.pool, interval: 1000 }),
    ).toThrow(/tenantId is required: meter, register are tenant-scoped/);
    expect(() =>
      createSyncAgent({
        source: source.pool,
        target: target.pool,
        tenantId: 1,
        only: ['nope' as 'device'],
      }),
    ).toThrow(DefinitionError);
    expect(() =>
      createSyncAgent({ source: {} as never, target: target.pool, tenantId: 1 }),
    ).toThrow(/source must be a pg-compatible pool/);
    const globalOnly = track(
      createSyncAgent({ source: source.pool, target: target.pool, only: ['device'] }),
    );
    expect((await globalOnly.triggerSync()).entities).toHaveProperty('device');
  });
});
