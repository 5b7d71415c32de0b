import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DatabaseError, LockedError, performSync } from '../../src/index.js';
import { builtInPairOnPostgres, recordingPool } from '../support/postgres.js';

describe('run options on PostgreSQL', () => {
  it('refuses to run while another sync holds the lock, waits for it when asked, and plans without it', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const holder = new pg.Client({ connectionString: local.url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(1836284270, 0)');
      await expect(
        performSync({ source: remote.pool, target: local.pool, tenantId: 1 }),
      ).rejects.toThrow(LockedError);
      let finished = false;
      const waiting = performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        lock: 'wait',
      }).then((r) => {
        finished = true;
        return r;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(finished).toBe(false);
      await holder.query('SELECT pg_advisory_unlock(1836284270, 0)');
      expect((await waiting).entities.register.inserted).toBe(4);
      const unlocked = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
      expect(unlocked.ok).toBe(true);
      await holder.query('SELECT pg_advisory_lock(1836284270, 0)');
      const planned = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        dryRun: true,
      });
      expect(planned.ok).toBe(true);
    } finally {
      await holder.end();
    }
  });

  it("connects to the source while it takes the lock, takes the source's snapshot only once it holds it, and gives the connection back when refused", async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const order: string[] = [];
    const source = recordingPool(remote.pool, async (text) => {
      order.push(`source: ${text.split(' ')[0]}${text.startsWith('BEGIN') ? ' snapshot' : ''}`);
    });
    const target = recordingPool(local.pool, async (text) => {
      // The lock takes a while: the source's connection is made meanwhile.
      if (text.includes('pg_try_advisory_xact_lock'))
        await new Promise((resolve) => setTimeout(resolve, 200));
      if (text === 'COMMIT' && order.at(-1) !== 'target: lock held')
        order.push('target: lock held');
    });
    await performSync({ source: source.pool, target: target.pool as never, tenantId: 1 });
    const held = order.indexOf('target: lock held');
    expect(order.findIndex((step) => step.startsWith('source:'))).toBeLessThan(held);
    expect(order.indexOf('source: BEGIN snapshot')).toBeGreaterThan(held);
    // Refused: no snapshot, and the source's connection is back in its pool.
    const holder = new pg.Client({ connectionString: local.url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(1836284270, 0)');
      const refused = recordingPool(remote.pool);
      await expect(
        performSync({ source: refused.pool, target: local.pool, tenantId: 1 }),
      ).rejects.toThrow(LockedError);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(refused.statements.some((text) => text.startsWith('BEGIN'))).toBe(false);
      expect(remote.pool.totalCount - remote.pool.idleCount).toBe(0);
    } finally {
      await holder.end();
    }
  });

  it('holds the lock for the run and lets go of it afterwards', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const advisoryLocks = async () =>
      (
        await local.pool.query(
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 1836284270 AND granted",
        )
      ).rows[0].n;
    let duringRun: number | undefined;
    const source = recordingPool(remote.pool, async (text) => {
      // Inside the register entity's transaction (the LOCK TABLE of the source comes before).
      if (duringRun === undefined && text.includes('"register"') && !text.startsWith('LOCK'))
        duringRun = await advisoryLocks();
    });
    await performSync({ source: source.pool, target: local.pool, tenantId: 1 });
    expect(duringRun).toBe(1);
    expect(await advisoryLocks()).toBe(0);
  });

  it('fails an entity that waits longer than lockTimeoutMs for a lock, and goes on', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const blocker = new pg.Client({ connectionString: local.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN; LOCK TABLE register IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const result = await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId: 1,
        lockTimeoutMs: 200,
      });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(result.entities.register.status).toBe('failed');
      expect(result.entities.register.error).toBeInstanceOf(DatabaseError);
      expect(result.entities.register.error?.message).toMatch(
        /register: .*lock timeout.*\[SQLSTATE 55P03\]/,
      );
      expect(result.entities.meter.status).toBe('ok');
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
  });

  it('cancels a source read that runs past statementTimeoutMs', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const { defineEntity, col } = await import('../../src/index.js');
    const { z } = await import('zod');
    const slow = defineEntity({
      name: 'slow',
      table: 'device',
      columns: z.object({ device_id: col.bigint() }),
      key: ['device_id'],
      source: { query: 'SELECT device_id FROM device, pg_sleep(2)' },
    });
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      entities: [slow],
      statementTimeoutMs: 300,
    });
    expect(result.entities.slow.status).toBe('failed');
    expect((result.entities.slow.error as DatabaseError).code).toBe('57014');
  });
});
