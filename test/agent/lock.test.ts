import { afterEach, describe, expect, it } from 'vitest';
import { createSyncAgent, LockedError, performSync, type SyncAgent } from '../../src/index.js';
import { builtInPairOnPostgres } from '../support/postgres.js';
import { gatedPool, nextEvents, until } from './support.js';

const agents: SyncAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.stop()));
});

describe('sync agent and the sync lock on PostgreSQL', () => {
  it('skips a scheduled run while another sync holds the lock, records why, and keeps its schedule', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const held = gatedPool(remote.pool);
    const other = performSync({ source: held.pool, target: local.pool, tenantId: 1 });
    await until(() => held.waiting() > 0); // the lock is taken before the source is read

    const agent = createSyncAgent({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      interval: 20,
      runOnStart: true,
    });
    agents.push(agent);
    const skipped = await nextEvents(agent, 'run-skipped', 2);
    expect(skipped.map((event) => event.reason)).toEqual(['locked', 'locked']);
    expect(skipped[0]?.error).toBeInstanceOf(LockedError);
    expect(agent.status().lastError).toBeInstanceOf(LockedError);
    expect(agent.status().lastResult).toBeUndefined();
    await expect(agent.triggerSync()).rejects.toBeInstanceOf(LockedError);

    const ended = nextEvents(agent, 'run-end');
    held.open();
    expect((await other).ok).toBe(true);
    const [end] = await ended;
    expect(end?.result.ok).toBe(true);
    expect(agent.status().lastError).toBeUndefined();
  });
});
