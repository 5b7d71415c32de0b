/**
 * Reading the Client System from a hot standby: replay of a VACUUM on the primary cancels a
 * REPEATABLE READ READ ONLY read whose snapshot still needs the rows it removes (a recovery
 * conflict), isTransientError calls that transient, and withRetries gets the read through.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresServer } from '../../scripts/postgres.js';
import { type StandbyServer, startPrimary, startStandby } from '../../scripts/standby.js';
import { isTransientError } from '../../src/db/pg/transient.js';
import type { SyncEvent } from '../../src/engine/events.js';
import { retryAttemptsOf, retryPolicy, withRetries } from '../../src/engine/retry.js';
import { performSync, syncSchemaSql } from '../../src/index.js';
import { clientSystemSchemaSql, seedClientSystem } from '../../src/sample/index.js';
import { capture } from '../support/capture.js';
import { recordingPool } from '../support/postgres.js';

const ROWS = 50_000;
let primary: PostgresServer;
let standby: StandbyServer;
let writer: pg.Pool;
let replica: pg.Pool;

/** Waits until the standby has replayed everything the primary has written so far. */
async function caughtUp(): Promise<void> {
  const { rows } = await writer.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const target = rows[0].lsn as string;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows: replayed } = await replica.query(
      'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done',
      [target],
    );
    if (replayed[0].done) return;
    if (Date.now() > deadline) throw new Error(`standby did not replay up to ${target}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Updates a tenth of the rows on the primary and vacuums the old versions away. */
async function updateAndVacuum(): Promise<void> {
  await writer.query('UPDATE "t" SET "v" = "v" + 1 WHERE "id" % 10 = 0');
  await writer.query('VACUUM "t"');
}

beforeAll(async () => {
  primary = await startPrimary();
  standby = await startStandby(primary, { maxStandbyStreamingDelay: '100ms' });
  writer = new pg.Pool({ connectionString: primary.url(), max: 2 });
  replica = new pg.Pool({ connectionString: standby.url(), max: 4 });
  // Conflicts end standby sessions too; a pool reports that on an idle client as 'error'.
  writer.on('error', () => undefined);
  replica.on('error', () => undefined);
  await writer.query(
    'CREATE TABLE "t" ("id" int PRIMARY KEY, "v" int NOT NULL) WITH (autovacuum_enabled = off)',
  );
  await writer.query('INSERT INTO "t" SELECT g, 0 FROM generate_series(1, $1::int) AS g', [ROWS]);
  await caughtUp();
}, 60_000);

afterAll(async () => {
  await Promise.all([writer?.end(), replica?.end()].map((p) => p?.catch(() => undefined)));
  await standby?.stop();
  await primary?.stop();
});

describe('a hot standby of the Client System', () => {
  it('is read-only and has the primary rows once replay has caught up', async () => {
    const { rows } = await replica.query(
      'SELECT pg_is_in_recovery() AS standby, count(*)::int AS n FROM "t"',
    );
    expect(rows[0]).toEqual({ standby: true, n: ROWS });
  });

  it('cancels a running read whose snapshot needs rows a replayed VACUUM removed: transient', async () => {
    const client = await replica.connect();
    let error: unknown;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query('SELECT count(*) FROM "t"');
      const reading = client.query('SELECT count(*), pg_sleep(10) FROM "t"');
      await updateAndVacuum();
      error = await capture(() => reading);
      await client.query('ROLLBACK').catch(() => undefined);
    } finally {
      client.release(true);
    }
    expect(error).toMatchObject({
      code: '40001',
      severity: 'ERROR',
      message: 'canceling statement due to conflict with recovery',
      detail: 'User query might have needed to see row versions that must be removed.',
    });
    expect(isTransientError(error)).toBe(true);
    await caughtUp();
  });

  it('ends a session that sits in such a transaction between statements: transient', async () => {
    const client = await replica.connect();
    const events: unknown[] = [];
    client.on('error', (e) => events.push(e));
    let error: unknown;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query('SELECT count(*) FROM "t"');
      await updateAndVacuum();
      // Idle in transaction: nothing to cancel, so PostgreSQL 15 ends the session.
      const deadline = Date.now() + 10_000;
      while (events.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      error = events[0] ?? (await capture(() => client.query('SELECT count(*) FROM "t"')));
    } finally {
      client.release(true);
    }
    expect(error).toMatchObject({
      code: '40001',
      severity: 'FATAL',
      message: 'terminating connection due to conflict with recovery',
    });
    expect(isTransientError(error)).toBe(true);
    await caughtUp();
  });

  it('gets a long REPEATABLE READ READ ONLY read through with withRetries', async () => {
    const conflicts: unknown[] = [];
    /** One read in one snapshot; its first run has a VACUUM replayed under it. */
    const read = async (attempt: number) => {
      const client = await replica.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const before = await client.query('SELECT count(*)::int AS n, sum("v")::int AS s FROM "t"');
        const reading = client.query('SELECT pg_sleep(1.5)');
        if (attempt === 1) await updateAndVacuum();
        await reading;
        const after = await client.query('SELECT count(*)::int AS n, sum("v")::int AS s FROM "t"');
        await client.query('COMMIT');
        return { before: before.rows[0], after: after.rows[0] };
      } catch (error) {
        broken = error as Error;
        throw error;
      } finally {
        client.release(broken ?? false);
      }
    };
    const outcome = await withRetries(
      retryPolicy({ attempts: 3, initialDelayMs: 200 }),
      isTransientError,
      read,
      {
        onRetry: ({ error }) => conflicts.push(error),
      },
    );
    expect(outcome.attempts).toBe(2);
    expect(outcome.value.after).toEqual(outcome.value.before);
    expect(outcome.value.before.n).toBe(ROWS);
    expect(conflicts).toEqual([
      expect.objectContaining({
        code: '40001',
        message: 'canceling statement due to conflict with recovery',
      }),
    ]);
  });

  it('gives up after the attempts when every attempt conflicts, with the count on the error', async () => {
    let calls = 0;
    const error = await capture(() =>
      withRetries(retryPolicy({ attempts: 2, initialDelayMs: 50 }), isTransientError, async () => {
        calls++;
        const client = await replica.connect();
        try {
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          await client.query('SELECT count(*) FROM "t"');
          const reading = client.query('SELECT pg_sleep(10)');
          await updateAndVacuum();
          await reading;
        } finally {
          client.release(true);
        }
      }),
    );
    expect(calls).toBe(2);
    expect(error).toMatchObject({ code: '40001' });
    expect(retryAttemptsOf(error)).toBe(2);
  });
});

describe('settings that keep the standby read from being cancelled', () => {
  /** A read in one snapshot, 1.5 s long, with an update and VACUUM replayed under it. */
  async function readUnderVacuum(pool: pg.Pool) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const before = await client.query('SELECT sum("v")::int AS s FROM "t"');
      const reading = client.query('SELECT pg_sleep(1.5)');
      await updateAndVacuum();
      await reading;
      const after = await client.query('SELECT sum("v")::int AS s FROM "t"');
      await client.query('COMMIT');
      return { before: before.rows[0].s as number, after: after.rows[0].s as number };
    } finally {
      client.release(true);
    }
  }

  it.each([
    ['hot_standby_feedback = on', { hotStandbyFeedback: true }],
    ['max_standby_streaming_delay longer than the read', { maxStandbyStreamingDelay: '30s' }],
  ] as const)('%s', async (_name, options) => {
    const other = await startStandby(primary, options);
    const pool = new pg.Pool({ connectionString: other.url(), max: 2 });
    pool.on('error', () => undefined);
    try {
      const { rows } = await writer.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      for (const deadline = Date.now() + 20_000; ; ) {
        const done = await pool.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [
          rows[0].lsn,
        ]);
        if (done.rows[0].done) break;
        if (Date.now() > deadline) throw new Error('standby did not catch up');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const outcome = await withRetries(retryPolicy({ attempts: 1 }), isTransientError, () =>
        readUnderVacuum(pool),
      );
      expect(outcome.attempts).toBe(1);
      expect(outcome.value.after).toBe(outcome.value.before);
    } finally {
      await pool.end().catch(() => undefined);
      await other.stop();
    }
  });
});

describe('performSync reading the Client System from the standby', () => {
  it('is retried on a new snapshot when a replayed VACUUM ends its read, and converges', async () => {
    await writer.query(clientSystemSchemaSql);
    await seedClientSystem(writer, [1]);
    await writer.query('CREATE DATABASE "sync_target"');
    const target = new pg.Pool({ connectionString: primary.url('sync_target'), max: 2 });
    try {
      await target.query(syncSchemaSql);
      await caughtUp();
      // Before the run's first read of register, its snapshot already open: rows it may see are
      // updated and vacuumed away on the primary, and replay ends the standby session.
      let conflicts = 0;
      const source = recordingPool(replica, async (text) => {
        if (conflicts > 0 || !/FROM "register"/.test(text)) return;
        conflicts++;
        await writer.query("UPDATE register SET unit = unit || '*'");
        await writer.query('VACUUM register');
        await caughtUp();
      });
      const events: SyncEvent[] = [];
      const result = await performSync({
        source: source.pool,
        target,
        tenantId: 1,
        onEvent: (event) => events.push(event),
      });
      expect(conflicts).toBe(1);
      expect(result.ok).toBe(true);
      expect(result.entities.register.attempts).toBe(2);
      expect(result.entities.register.failedAttempts).toEqual([
        expect.objectContaining({
          attempt: 1,
          transient: true,
          message: expect.stringMatching(/conflict with recovery|connection|not queryable/),
        }),
      ]);
      expect(events.filter((event) => event.type === 'entity-retry')).toHaveLength(1);
      const units = 'SELECT register_id::text, unit FROM register ORDER BY 1';
      expect((await target.query(units)).rows).toEqual((await writer.query(units)).rows);
    } finally {
      await target.end();
    }
  });
});
