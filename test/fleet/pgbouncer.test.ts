/**
 * The Client System behind PgBouncer in transaction pooling, as a fleet of agents may meet it:
 * what a read in one REPEATABLE READ READ ONLY transaction keeps, what does not leak from one
 * client to the next, why the sync lock must be transaction-scoped there, and PgBouncer's own
 * errors with isTransientError's verdict on them.
 */
import { randomInt } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { findPgBouncer, type PgBouncer, startPgBouncer } from '../../scripts/pgbouncer.js';
import { isTransientError } from '../../src/db/pg/transient.js';
import { LockedError, performSync, type SyncResult } from '../../src/index.js';
import { capture, closedPort } from '../support/capture.js';
import { recordingLogger } from '../support/pgmem.js';
import { builtInPairOnPostgres, createDatabase, recordingPool } from '../support/postgres.js';

const installed = findPgBouncer() !== undefined;
if (!installed) {
  console.warn(
    'PgBouncer tests skipped: no pgbouncer program (Debian: apt-get install pgbouncer; .ci/run installs it)',
  );
}

describe.skipIf(!installed)('PgBouncer in transaction pooling', () => {
  let bouncer: PgBouncer;
  let direct: pg.Pool;
  let databaseName: string;
  const clients: pg.Client[] = [];
  const bouncers: PgBouncer[] = [];

  /** A client of its own through PgBouncer (entry `shared`: 2 server connections; `single`: 1). */
  async function through(entry: 'shared' | 'single' | string, on = bouncer): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: on.url(entry) });
    client.on('error', () => undefined);
    clients.push(client);
    await client.connect();
    return client;
  }

  async function one<T>(client: pg.Client | pg.Pool, text: string, values: unknown[] = []) {
    const { rows } = await client.query(text, values);
    return rows[0] as T;
  }

  beforeAll(async () => {
    const database = await createDatabase('fleet_bouncer');
    databaseName = database.name;
    direct = database.pool;
    await direct.query(
      'CREATE TABLE "t" ("id" int PRIMARY KEY, "v" int NOT NULL); INSERT INTO "t" SELECT g, 0 FROM generate_series(1, 1000) AS g',
    );
    const upstream = new URL(inject('postgresUrl'));
    bouncer = await startPgBouncer({
      upstream: { host: upstream.hostname, port: Number(upstream.port) },
      poolMode: 'transaction',
      databases: [
        { name: 'shared', dbname: databaseName, poolSize: 2 },
        { name: 'single', dbname: databaseName, poolSize: 1 },
        { name: 'down', dbname: databaseName, port: await closedPort() },
      ],
      settings: { query_wait_timeout: 1, server_connect_timeout: 1, server_login_retry: 1 },
    });
    bouncers.push(bouncer);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    await Promise.all(bouncers.map((b) => b.stop()));
  });

  it('keeps one snapshot and one server connection through a REPEATABLE READ READ ONLY transaction', async () => {
    const reader = await through('shared');
    const count = 'SELECT count(*)::int AS n, pg_backend_pid() AS pid FROM "t"';
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const first = await one<{ n: number; pid: number }>(reader, count);
    // Another client commits while the transaction is open, through the pooler and directly.
    const writer = await through('shared');
    await writer.query('INSERT INTO "t" SELECT g, 0 FROM generate_series(1001, 1100) AS g');
    await direct.query('DELETE FROM "t" WHERE "id" <= 50');
    const second = await one<{ n: number; pid: number }>(reader, count);
    const mode = await one<{ iso: string; ro: string }>(
      reader,
      "SELECT current_setting('transaction_isolation') AS iso, current_setting('transaction_read_only') AS ro",
    );
    await reader.query('COMMIT');
    const after = await one<{ n: number }>(reader, count);

    expect(mode).toEqual({ iso: 'repeatable read', ro: 'on' });
    expect(second).toEqual(first);
    // The changes were there to be seen: outside the transaction they are.
    expect(after.n).toBe(first.n + 100 - 50);
  });

  it('lets SET LOCAL and set_config(…, true) end with the transaction; a session SET leaks to the next client', async () => {
    const defaults = await one<{ st: string; ds: string }>(
      direct,
      "SELECT current_setting('statement_timeout') AS st, current_setting('DateStyle') AS ds",
    );
    const settings =
      "SELECT current_setting('statement_timeout') AS st, current_setting('DateStyle') AS ds, pg_backend_pid() AS pid";
    const first = await through('single');
    const second = await through('single');

    await first.query('BEGIN');
    await first.query("SET LOCAL statement_timeout = '1234ms'");
    await first.query("SELECT set_config('DateStyle', 'SQL, DMY', true)");
    const inside = await one<{ st: string; ds: string; pid: number }>(first, settings);
    await first.query('COMMIT');
    await second.query('BEGIN');
    const later = await one<{ st: string; ds: string; pid: number }>(second, settings);
    await second.query('COMMIT');

    expect(inside).toMatchObject({ st: '1234ms', ds: 'SQL, DMY' });
    // The same server connection (the entry has one), with the server's defaults again.
    expect(later.pid).toBe(inside.pid);
    expect({ st: later.st, ds: later.ds }).toEqual(defaults);

    // A session-level SET stays on the server connection and reaches whichever client gets it
    // next. PgBouncer tracks a few parameters (DateStyle, TimeZone, client_encoding,
    // standard_conforming_strings, application_name) and sets each client's own back; the rest,
    // statement_timeout among them, leak.
    await first.query("SET statement_timeout = '4321ms'");
    await first.query("SET DateStyle = 'SQL, DMY'");
    const leaked = await one<{ st: string; ds: string; pid: number }>(second, settings);
    await second.query('RESET statement_timeout');
    expect(leaked.pid).toBe(inside.pid);
    expect(leaked.st).toBe('4321ms');
    expect(leaked.ds).toBe(defaults.ds);
  });

  it('does not keep two clients apart with a session-level advisory lock', async () => {
    const key = randomInt(1, 2 ** 31 - 1);
    const held = `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1`;
    // Without a pooler, two sessions are kept apart.
    const d1 = await direct.connect();
    const d2 = await direct.connect();
    try {
      expect(await one(d1, 'SELECT pg_try_advisory_lock($1) AS got', [key])).toEqual({ got: true });
      expect(await one(d2, 'SELECT pg_try_advisory_lock($1) AS got', [key])).toEqual({
        got: false,
      });
      await d1.query('SELECT pg_advisory_unlock($1)', [key]);
    } finally {
      d1.release();
      d2.release();
    }

    // Through the pooler, the lock stays on the server connection, which the next client gets.
    const first = await through('single');
    const second = await through('single');
    expect(await one(first, 'SELECT pg_try_advisory_lock($1) AS got', [key])).toEqual({
      got: true,
    });
    expect(await one(second, 'SELECT pg_try_advisory_lock($1) AS got', [key])).toEqual({
      got: true,
    });
    // And it outlives both clients' transactions: a session outside the pooler is shut out.
    expect(await one(direct, 'SELECT pg_try_advisory_lock($1) AS got', [key])).toEqual({
      got: false,
    });
    await second.query('SELECT pg_advisory_unlock_all()');
    expect(await one(direct, held, [key])).toEqual({ n: 0 });
  });

  it('keeps two clients apart with a transaction-scoped advisory lock', async () => {
    const key = randomInt(1, 2 ** 31 - 1);
    const first = await through('shared');
    const second = await through('shared');
    await first.query('BEGIN');
    await first.query('SELECT pg_advisory_xact_lock($1)', [key]);
    await second.query('BEGIN');
    const refused = await one<{ got: boolean }>(
      second,
      'SELECT pg_try_advisory_xact_lock($1) AS got',
      [key],
    );
    await second.query('COMMIT');
    await first.query('COMMIT');
    await second.query('BEGIN');
    const granted = await one<{ got: boolean }>(
      second,
      'SELECT pg_try_advisory_xact_lock($1) AS got',
      [key],
    );
    await second.query('COMMIT');
    expect(refused.got).toBe(false);
    expect(granted.got).toBe(true);
    expect(
      await one(
        direct,
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1",
        [key],
      ),
    ).toEqual({ n: 0 });
  });

  describe("PgBouncer's errors", () => {
    it('"no such database" (08P01): not transient', async () => {
      const error = await capture(() => through('no_such_entry'));
      expect(error).toMatchObject({ code: '08P01', message: 'no such database: no_such_entry' });
      expect(isTransientError(error)).toBe(false);
    });

    it('"query_wait_timeout" (08P01) while every server connection is taken: transient', async () => {
      const holder = await through('single');
      const waiter = await through('single');
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      const error = await capture(() => waiter.query('SELECT 1'));
      await holder.query('COMMIT');
      expect(error).toMatchObject({ code: '08P01', message: 'query_wait_timeout' });
      expect(isTransientError(error)).toBe(true);
    });

    it('"no more connections allowed (max_client_conn)" (08P01): transient', async () => {
      const upstream = new URL(inject('postgresUrl'));
      const small = await startPgBouncer({
        upstream: { host: upstream.hostname, port: Number(upstream.port) },
        databases: [{ name: 'shared', dbname: databaseName }],
        settings: { max_client_conn: 2 },
      });
      bouncers.push(small);
      await through('shared', small);
      await through('shared', small);
      const error = await capture(async () => (await through('shared', small)).query('SELECT 1'));
      expect(error).toMatchObject({
        code: '08P01',
        message: 'no more connections allowed (max_client_conn)',
      });
      expect(isTransientError(error)).toBe(true);
    });

    it('a server connection terminated mid-query: 57P01, then "server conn crashed?" (08P01); both transient', async () => {
      const victim = await through('shared');
      const events: unknown[] = [];
      victim.on('error', (error) => events.push(error));
      const running = victim.query('SELECT pg_sleep(10) AS "fleet_victim"');
      // It rejects while the terminating statement is awaited: handled from the start.
      running.catch(() => undefined);
      let pid: number | undefined;
      for (let i = 0; i < 100 && pid === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const { rows } = await direct.query(
          `SELECT pid FROM pg_stat_activity WHERE query LIKE '%fleet\\_victim%' AND pid <> pg_backend_pid()`,
        );
        pid = rows[0]?.pid;
      }
      expect(pid).toBeTypeOf('number');
      await direct.query('SELECT pg_terminate_backend($1)', [pid]);
      const terminated = await capture(() => running);
      // PgBouncer passes the server's FATAL on, then closes the client with its own error, which
      // node-postgres reports as an 'error' event; a query after that is refused.
      for (let i = 0; i < 100 && events.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const next = await capture(() => victim.query('SELECT 1'));
      expect(terminated).toMatchObject({
        code: '57P01',
        message: 'terminating connection due to administrator command',
      });
      expect(events).toContainEqual(
        expect.objectContaining({ code: '08P01', message: 'server conn crashed?' }),
      );
      expect(isTransientError(terminated)).toBe(true);
      for (const error of [...events, next]) expect(isTransientError(error)).toBe(true);
    });

    it('an upstream nobody listens on: the client waits, then "query_wait_timeout"; transient', async () => {
      const error = await capture(async () => (await through('down')).query('SELECT 1'));
      expect(error).toMatchObject({ code: '08P01', message: 'query_wait_timeout' });
      expect(isTransientError(error)).toBe(true);
    });
  });
});

describe.skipIf(!installed)(
  'syncs into a sync database behind PgBouncer in transaction pooling',
  () => {
    let bouncer: PgBouncer;
    let pair: Awaited<ReturnType<typeof builtInPairOnPostgres>>;
    const pools: pg.Pool[] = [];
    const poolThrough = (entry: string) => {
      const pool = new pg.Pool({ connectionString: bouncer.url(entry), max: 4 });
      pool.on('error', () => undefined);
      pools.push(pool);
      return pool;
    };

    beforeAll(async () => {
      pair = await builtInPairOnPostgres([1]);
      const first = await performSync({
        source: pair.remote.pool,
        target: pair.local.pool,
        tenantId: 1,
      });
      expect(first.ok).toBe(true);
      const upstream = new URL(inject('postgresUrl'));
      bouncer = await startPgBouncer({
        upstream: { host: upstream.hostname, port: Number(upstream.port) },
        poolMode: 'transaction',
        databases: [
          { name: 'sync', dbname: new URL(pair.local.url).pathname.slice(1), poolSize: 4 },
          { name: 'single', dbname: new URL(pair.local.url).pathname.slice(1), poolSize: 1 },
        ],
      });
    });

    afterAll(async () => {
      await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
      await bouncer?.stop();
    });

    /** A source whose first read of `register` waits until `open()`: its run holds the lock. */
    function heldSource() {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => {
        open = resolve;
      });
      let reached!: () => void;
      const waiting = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const gated = recordingPool(pair.remote.pool, async (text) => {
        if (!/FROM "register"/.test(text)) return;
        reached();
        await opened;
      });
      return { pool: gated.pool, open, waiting };
    }

    it.each([
      { lock: true as const, name: 'refuses the second run, naming the holder' },
      { lock: 'wait' as const, name: 'makes the second run wait until the first has finished' },
    ])('$name', async ({ lock }) => {
      const target = poolThrough('sync');
      await pair.remote.pool.query(
        "UPDATE register SET name = name || '+' WHERE register_id = 101",
      );
      const held = heldSource();
      const first = performSync({ source: held.pool, target, tenantId: 1 });
      await held.waiting;
      const second = performSync({ source: pair.remote.pool, target, tenantId: 1, lock }).then(
        (result) => result,
        (error: unknown) => error,
      );
      // Long enough for the second run to go as far as it can while the first holds the lock.
      await new Promise((resolve) => setTimeout(resolve, 500));
      held.open();
      const [a, b] = await Promise.all([first, second]);
      expect(a.ok).toBe(true);
      expect(a.entities.register, JSON.stringify(a.entities)).toMatchObject({ updated: 1 });
      if (lock === true) {
        expect(b).toBeInstanceOf(LockedError);
        expect((b as Error).message).toMatch(
          /^another sync holds the sync lock on the target database \(.* pid \d+ run [0-9a-f]+, since .*, lease until .*\)/,
        );
      } else {
        const waited = b as SyncResult;
        expect(waited.ok).toBe(true);
        expect(waited.startedAt.getTime()).toBeGreaterThanOrEqual(a.finishedAt.getTime());
        expect(waited.entities.register?.updated).toBe(0);
      }
      // Released at the end: the row is gone, nobody holds the advisory key.
      expect(
        (await pair.local.pool.query('SELECT count(*)::int AS n FROM meter_sync_lock')).rows,
      ).toEqual([{ n: 0 }]);
      expect(
        (
          await pair.local.pool.query(
            "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 1836284270",
          )
        ).rows,
      ).toEqual([{ n: 0 }]);
    });

    it('leaves no session setting behind for the next client of the server connection', async () => {
      const show = async (client: pg.Client | pg.Pool) => {
        const values: Record<string, string> = {};
        for (const name of [
          'DateStyle',
          'TimeZone',
          'statement_timeout',
          'lock_timeout',
          'work_mem',
          'IntervalStyle',
          'extra_float_digits',
          'application_name',
        ]) {
          values[name] = (await client.query(`SHOW ${name}`)).rows[0][name.toLowerCase()];
        }
        return values;
      };
      const other = new pg.Client({ connectionString: bouncer.url('single') });
      other.on('error', () => undefined);
      await other.connect();
      try {
        const before = await show(other);
        // One server connection: the sync's transactions and the other client's run on it in turn.
        const target = poolThrough('single');
        await pair.remote.pool.query(
          "UPDATE register SET unit = unit || '+' WHERE register_id = 103",
        );
        const result = await performSync({
          source: pair.remote.pool,
          target,
          tenantId: 1,
          statementTimeoutMs: 4321,
          lockTimeoutMs: 1234,
        });
        expect(result.ok).toBe(true);
        expect(result.entities.register.updated).toBe(1);
        const pids = new Set<number>();
        for (let i = 0; i < 3; i++)
          pids.add((await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
        expect(pids.size).toBe(1);
        expect(await show(other)).toEqual(before);
      } finally {
        await other.end();
      }
    });
  },
);

describe('the sync lock row', () => {
  it.each([
    { expired: false, holderAlive: true, free: false },
    { expired: true, holderAlive: true, free: true },
    { expired: false, holderAlive: false, free: true },
    { expired: true, holderAlive: false, free: true },
  ])(
    'held by a run whose lease expired: $expired, whose server session lives: $holderAlive → free: $free',
    async ({ expired, holderAlive, free }) => {
      const { remote, local } = await builtInPairOnPostgres([1]);
      // A server session that stands for the holder's connection: kept open, or closed.
      const holder = new pg.Client({ connectionString: local.url });
      await holder.connect();
      const { rows } = await holder.query(
        `INSERT INTO meter_sync_lock
          SELECT 'sync', 'elsewhere pid 1 run 0', pid, backend_start, now(), now() + $1::interval
            FROM pg_stat_activity WHERE pid = pg_backend_pid()
          RETURNING backend_pid AS pid`,
        [expired ? '-1 second' : '1 minute'],
      );
      if (!holderAlive) {
        await holder.end();
        for (let i = 0; i < 100; i++) {
          const gone = await local.pool.query(
            'SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1',
            [rows[0].pid],
          );
          if (gone.rows[0].n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      try {
        const outcome = await performSync({
          source: remote.pool,
          target: local.pool,
          tenantId: 1,
        }).then(
          (result) => result.ok,
          (error: unknown) => error,
        );
        if (free) expect(outcome).toBe(true);
        else {
          expect(outcome).toBeInstanceOf(LockedError);
          expect((outcome as Error).message).toContain('elsewhere pid 1 run 0');
        }
      } finally {
        if (holderAlive) await holder.end();
      }
    },
  );

  it('is created on first use in a sync database without it, and the run goes on', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await local.pool.query('DROP TABLE meter_sync_lock');
    const { lines, logger } = recordingLogger();
    expect(
      (await performSync({ source: remote.pool, target: local.pool, tenantId: 1, logger })).ok,
    ).toBe(true);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'info', message: 'created the sync lock table' }),
    );
    expect(
      (await local.pool.query("SELECT to_regclass('meter_sync_lock') IS NOT NULL AS there")).rows,
    ).toEqual([{ there: true }]);
  });
});
