/**
 * isTransientError on errors a real PostgreSQL 15 and real sockets produce, each captured here;
 * the few that cannot be provoked on one local server (a crash shutdown, a server starting up)
 * are built with the fields node-postgres gives them, and say so.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { databaseError } from '../../src/db/pg/errors.js';
import { isTransientError } from '../../src/db/pg/transient.js';
import type { SyncEvent } from '../../src/engine/events.js';
import {
  ConfigurationError,
  DatabaseError,
  DataError,
  DefinitionError,
  LockedError,
  MeterSyncError,
  SchemaError,
} from '../../src/errors.js';
import { performSync } from '../../src/index.js';
import { capture, closedPort, misbehavingServer } from '../support/capture.js';
import { builtInPairOnPostgres, createDatabase } from '../support/postgres.js';

const suffix = randomBytes(4).toString('hex');
const reader = `fleet_reader_${suffix}`;
const single = `fleet_single_${suffix}`;
let database: { name: string; url: string; pool: pg.Pool };
const clients: pg.Client[] = [];
const clientsToEnd: pg.Pool[] = [];

function urlAs(user: string, databaseName = database.name): string {
  const url = new URL(inject('postgresUrl'));
  url.username = user;
  url.pathname = `/${databaseName}`;
  return url.toString();
}

async function client(url = database.url, config: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, ...config });
  c.on('error', () => undefined);
  clients.push(c);
  await c.connect();
  return c;
}

beforeAll(async () => {
  const created = await createDatabase('fleet_transient');
  // A pool of this file's own, which expects its connections to be terminated.
  const pool = new pg.Pool({ connectionString: created.url, max: 4 });
  pool.on('error', () => undefined);
  database = { ...created, pool };
  await database.pool.query(
    'CREATE TABLE "t" ("id" int PRIMARY KEY, "v" int NOT NULL); INSERT INTO "t" VALUES (1, 0), (2, 0)',
  );
  await database.pool.query(`CREATE ROLE "${reader}" LOGIN`);
  await database.pool.query(`CREATE ROLE "${single}" LOGIN CONNECTION LIMIT 1`);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await Promise.all(clientsToEnd.map((p) => p.end().catch(() => undefined)));
  await database.pool.query(`DROP OWNED BY "${reader}"`).catch(() => undefined);
  await database.pool.query(`DROP ROLE IF EXISTS "${reader}"`);
  await database.pool.query(`DROP ROLE IF EXISTS "${single}"`);
  await database.pool.end();
});

/** A real error, what it must look like, and the verdict. */
interface Case {
  readonly name: string;
  readonly provoke: () => Promise<unknown>;
  readonly code?: string;
  readonly message: RegExp;
  readonly transient: boolean;
}

const permanent: Case[] = [
  {
    name: 'syntax error',
    provoke: () => database.pool.query('SELEC 1'),
    code: '42601',
    message: /syntax error/,
    transient: false,
  },
  {
    name: 'missing table',
    provoke: () => database.pool.query('SELECT * FROM "no_such_table"'),
    code: '42P01',
    message: /does not exist/,
    transient: false,
  },
  {
    name: 'missing column',
    provoke: () => database.pool.query('SELECT "nope" FROM "t"'),
    code: '42703',
    message: /does not exist/,
    transient: false,
  },
  {
    name: 'division by zero',
    provoke: () => database.pool.query('SELECT 1 / (v) FROM "t"'),
    code: '22012',
    message: /division by zero/,
    transient: false,
  },
  {
    name: 'unique violation',
    provoke: () => database.pool.query('INSERT INTO "t" VALUES ($1, 0)', [1]),
    code: '23505',
    message: /duplicate key/,
    transient: false,
  },
  {
    name: 'no privilege',
    provoke: async () => (await client(urlAs(reader))).query('SELECT * FROM "t"'),
    code: '42501',
    message: /permission denied/,
    transient: false,
  },
  {
    name: 'unknown role',
    provoke: () => client(urlAs(`no_such_role_${suffix}`)),
    code: '28000',
    message: /role .* does not exist/,
    transient: false,
  },
  {
    name: 'unknown database',
    provoke: () => client(urlAs('postgres', `no_such_database_${suffix}`)),
    code: '3D000',
    message: /database .* does not exist/,
    transient: false,
  },
  {
    name: 'statement_timeout',
    provoke: async () => {
      const c = await client();
      await c.query("SET statement_timeout = '50ms'");
      await c.query('SELECT pg_sleep(2)');
    },
    code: '57014',
    message: /statement timeout/,
    transient: false,
  },
  {
    name: 'write in a read-only transaction',
    provoke: async () => {
      const c = await client();
      await c.query('BEGIN READ ONLY');
      try {
        await c.query('UPDATE "t" SET "v" = 1');
      } finally {
        await c.query('ROLLBACK');
      }
    },
    code: '25006',
    message: /read-only transaction/,
    transient: false,
  },
  {
    name: "lock_timeout (the caller's own bound on waiting)",
    provoke: async () => {
      const holder = await client();
      const waiter = await client();
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE "t" IN ACCESS EXCLUSIVE MODE');
      try {
        await waiter.query("SET lock_timeout = '50ms'");
        await waiter.query('SELECT * FROM "t"');
      } finally {
        await holder.query('ROLLBACK');
      }
    },
    code: '55P03',
    message: /lock timeout/,
    transient: false,
  },
];

const transient: Case[] = [
  {
    name: 'serialization failure (concurrent update under REPEATABLE READ)',
    provoke: async () => {
      const a = await client();
      const b = await client();
      await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await a.query('SELECT * FROM "t"');
      await b.query('UPDATE "t" SET "v" = "v" + 1 WHERE "id" = 1');
      try {
        await a.query('UPDATE "t" SET "v" = "v" + 1 WHERE "id" = 1');
      } finally {
        await a.query('ROLLBACK');
      }
    },
    code: '40001',
    message: /could not serialize access/,
    transient: true,
  },
  {
    name: 'deadlock',
    provoke: async () => {
      const a = await client();
      const b = await client();
      for (const c of [a, b]) {
        await c.query("SET deadlock_timeout = '50ms'");
        await c.query('BEGIN');
      }
      await a.query('UPDATE "t" SET "v" = "v" WHERE "id" = 1');
      await b.query('UPDATE "t" SET "v" = "v" WHERE "id" = 2');
      const results = await Promise.allSettled([
        a.query('UPDATE "t" SET "v" = "v" WHERE "id" = 2'),
        b.query('UPDATE "t" SET "v" = "v" WHERE "id" = 1'),
      ]);
      await Promise.all([a.query('ROLLBACK'), b.query('ROLLBACK')]);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    code: '40P01',
    message: /deadlock detected/,
    transient: true,
  },
  {
    name: 'backend terminated by an administrator (pg_terminate_backend)',
    provoke: async () => {
      const victim = await client();
      const pid = (await victim.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const running = victim.query('SELECT pg_sleep(5)');
      await new Promise((resolve) => setTimeout(resolve, 100));
      await database.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await running;
    },
    code: '57P01',
    message: /terminating connection due to administrator command/,
    transient: true,
  },
  {
    name: 'too many connections for the role',
    provoke: async () => {
      await client(urlAs(single));
      await client(urlAs(single));
    },
    code: '53300',
    message: /too many connections/,
    transient: true,
  },
  {
    name: 'connection refused',
    provoke: async () => client(`postgres://postgres@127.0.0.1:${await closedPort()}/postgres`),
    code: 'ECONNREFUSED',
    message: /ECONNREFUSED/,
    transient: true,
  },
  {
    name: 'connection closed before the server spoke',
    provoke: async () => {
      const server = await misbehavingServer('close');
      try {
        await client(`postgres://postgres@127.0.0.1:${server.port}/postgres`);
      } finally {
        await server.close();
      }
    },
    message: /^Connection terminated unexpectedly$/,
    transient: true,
  },
  {
    name: 'connect timeout (a server that never answers)',
    provoke: async () => {
      const server = await misbehavingServer('silent');
      try {
        await client(`postgres://postgres@127.0.0.1:${server.port}/postgres`, {
          connectionTimeoutMillis: 200,
        });
      } finally {
        await server.close();
      }
    },
    message: /^timeout expired$/,
    transient: true,
  },
  {
    name: 'pg-pool connect timeout (a server that never answers)',
    provoke: async () => {
      const server = await misbehavingServer('silent');
      const pool = new pg.Pool({
        connectionString: `postgres://postgres@127.0.0.1:${server.port}/postgres`,
        connectionTimeoutMillis: 200,
      });
      try {
        await pool.query('SELECT 1');
      } finally {
        await pool.end();
        await server.close();
      }
    },
    message: /^Connection terminated due to connection timeout$/,
    transient: true,
  },
  {
    name: 'pg-pool connect timeout (every connection checked out)',
    provoke: async () => {
      const pool = new pg.Pool({
        connectionString: database.url,
        max: 1,
        connectionTimeoutMillis: 200,
      });
      const held = await pool.connect();
      try {
        await pool.connect();
      } finally {
        held.release();
        await pool.end();
      }
    },
    message: /^timeout exceeded when trying to connect$/,
    transient: true,
  },
];

describe('isTransientError on errors captured from PostgreSQL 15 and node', () => {
  const captured = new Map<string, unknown>();
  const get = async (name: string) => {
    const found = captured.get(name);
    if (found !== undefined) return found;
    const c = [...permanent, ...transient].find((x) => x.name === name);
    if (!c) throw new Error(name);
    const error = await capture(c.provoke);
    captured.set(name, error);
    return error;
  };

  it.each([...permanent, ...transient])('$name: transient $transient', async (c) => {
    const error = await get(c.name);
    if (c.code) expect((error as { code?: unknown }).code).toBe(c.code);
    expect((error as Error).message).toMatch(c.message);
    expect(isTransientError(error)).toBe(c.transient);
  });

  it('looks through DatabaseError and other wrappers to the driver error', async () => {
    const serialization = await get(transient[0]?.name as string);
    const syntax = await get(permanent[0]?.name as string);
    const refused = await get('connection refused');
    const wrapped = databaseError(serialization, 'meter', 'reading the source');
    expect(wrapped).toBeInstanceOf(DatabaseError);
    expect(isTransientError(wrapped)).toBe(true);
    expect(isTransientError(databaseError(syntax, 'meter', 'reading the source'))).toBe(false);
    const deep = new MeterSyncError('sync failed', {
      cause: databaseError(refused, undefined, 'connecting to the source'),
    });
    expect(isTransientError(deep)).toBe(true);
    // A driver error with no code: the wrapper's message is the driver's plus context.
    const terminated = await get('connection closed before the server spoke');
    expect(isTransientError(databaseError(terminated, 'meter', 'reading'))).toBe(true);
  });

  it("never retries meter-sync's own verdicts, whatever they wrap", async () => {
    const serialization = await get(transient[0]?.name as string);
    for (const Kind of [DataError, DefinitionError, ConfigurationError, SchemaError, LockedError]) {
      expect(isTransientError(new Kind('no', { cause: serialization }))).toBe(false);
    }
  });
});

describe('isTransientError on errors built with the fields node-postgres gives them', () => {
  /** A driver error as pg-protocol builds it from an ErrorResponse. */
  const serverError = (code: string, message: string, severity = 'FATAL') =>
    Object.assign(new Error(message), { code, severity });
  const errno = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });

  it.each([
    [
      serverError('57P02', 'terminating connection because of crash of another server process'),
      true,
    ],
    [serverError('57P03', 'the database system is starting up'), true],
    [serverError('57P03', 'the database system is in recovery mode'), true],
    [serverError('57P05', 'terminating connection due to idle-session timeout'), true],
    [serverError('08006', 'connection failure'), true],
    [serverError('08001', 'could not connect to server'), true],
    [serverError('40001', 'canceling statement due to conflict with recovery', 'ERROR'), true],
    [serverError('40001', 'terminating connection due to conflict with recovery'), true],
    [serverError('57014', 'canceling statement due to conflict with recovery', 'ERROR'), true],
    [serverError('57014', 'canceling statement due to user request', 'ERROR'), false],
    [serverError('57P04', 'terminating connection due to conflict with recovery'), false],
    [serverError('28P01', 'password authentication failed for user "x"'), false],
    [
      serverError(
        '08P01',
        'bind message supplies 2 parameters, but prepared statement "" requires 1',
        'ERROR',
      ),
      false,
    ],
    [serverError('08P01', 'server conn crashed?'), true],
    [serverError('08P01', 'no more connections allowed (max_client_conn)'), true],
    [serverError('08P01', 'query_wait_timeout'), true],
    [serverError('08P01', 'no such database: nope'), false],
    [errno('EPIPE'), true],
    [errno('ETIMEDOUT'), true],
    [errno('ECONNRESET'), true],
    [errno('ENOTFOUND'), false],
    [new AggregateError([errno('ECONNREFUSED'), errno('ECONNREFUSED')]), true],
    [new AggregateError([errno('ECONNREFUSED'), errno('ENOTFOUND')]), false],
    [new Error('something else'), false],
    ['a thrown string', false],
    [undefined, false],
  ])('%o → %s', (error, expected) => {
    expect(isTransientError(error)).toBe(expected);
  });

  it('stops at a cycle of causes', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(isTransientError(a)).toBe(false);
  });
});

describe('performSync when a source backend is terminated in the middle of a read', () => {
  /** A synced pair, then changes on the source: an update, and a row deleted with its link. */
  async function changedPair(application: string) {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const source = new pg.Pool({ connectionString: remote.url, application_name: application });
    source.on('error', () => undefined);
    clientsToEnd.push(source);
    expect((await performSync({ source, target: local.pool, tenantId: 1 })).ok).toBe(true);
    await remote.pool.query(`UPDATE register SET unit = 'MWh' WHERE register_id = 101;
      DELETE FROM device_register WHERE register_id = 102;
      DELETE FROM register WHERE register_id = 102`);
    return { remote, local, source };
  }

  // As text: the source's and the target's integer types differ.
  const registers = 'SELECT register_id::text, unit FROM register ORDER BY register_id';
  const links = 'SELECT device_id::text, register_id::text FROM device_register ORDER BY 1, 2';
  /** The target's registers are tenant 1's on the source, and its links the source's. */
  async function expectTargetEqualsTenant(source: pg.Pool, target: pg.Pool) {
    expect((await target.query(registers)).rows).toEqual(
      (await source.query(registers.replace('ORDER', 'WHERE tenant_id = 1 ORDER'))).rows,
    );
    expect((await target.query(links)).rows).toEqual((await source.query(links)).rows);
  }

  it.each([
    { retry: undefined, name: 'the default retries' },
    { retry: false as const, name: 'retry: false' },
  ])(
    'with $name: the snapshot is opened again and the run applied, or it fails with nothing deleted',
    async ({ retry }) => {
      const application = `fleet_terminated_${randomBytes(3).toString('hex')}`;
      const { remote, local, source } = await changedPair(application);
      const targetBefore = (await local.pool.query(registers)).rows;
      // A lock on the source's register table parks the run where it locks the tables it reads,
      // before its snapshot is taken, so the backend is terminated while a statement runs.
      const locker = new pg.Client({ connectionString: remote.url });
      await locker.connect();
      await locker.query('BEGIN; LOCK TABLE register IN ACCESS EXCLUSIVE MODE');
      const events: SyncEvent[] = [];
      const running = performSync({
        source,
        target: local.pool,
        tenantId: 1,
        retry,
        onEvent: (event) => events.push(event),
      }).catch((error: unknown) => error);
      let terminated = false;
      try {
        for (const deadline = Date.now() + 20_000; !terminated && Date.now() < deadline; ) {
          const { rows } = await database.pool.query(
            `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
            WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%"register"%'`,
            [application],
          );
          terminated = rows.some((row) => row.done === true);
          if (!terminated) await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      const result = await running;
      expect(terminated).toBe(true);
      if (retry === false) {
        expect(result).toBeInstanceOf(Error);
        expect(String((result as Error).message)).toMatch(/starting the source snapshot failed/);
        // Nothing was read: nothing reached the target, no row was deleted.
        expect((await local.pool.query(registers)).rows).toEqual(targetBefore);
        expect(events.some((event) => event.type === 'entity-start')).toBe(false);
      } else {
        const synced = result as Awaited<ReturnType<typeof performSync>>;
        expect(synced.ok).toBe(true);
        expect(synced.entities.register).toMatchObject({
          status: 'ok',
          attempts: 1,
          updated: 1,
          deleted: 1,
        });
        await expectTargetEqualsTenant(remote.pool, local.pool);
      }
    },
  );

  it.each([
    { retry: undefined, name: 'the default retries' },
    { retry: false as const, name: 'retry: false' },
  ])(
    'with $name, cut in a statement of register: register retried on a new snapshot and applied, or failed with nothing deleted',
    async ({ retry }) => {
      const application = `fleet_mid_read_${randomBytes(3).toString('hex')}`;
      const { remote, local, source } = await changedPair(application);
      // Another tenant's registers, many and unindexed: each statement on register scans them,
      // long enough to be terminated while it runs.
      await remote.pool.query(`INSERT INTO register (register_id, tenant_id, name, register, unit)
        SELECT 1000000 + g, 2, 'other', g, 'kWh' FROM generate_series(1, 1500000) AS g;
        ANALYZE register`);
      const targetBefore = (await local.pool.query(registers)).rows;
      const events: SyncEvent[] = [];
      const running = performSync({
        source,
        target: local.pool,
        tenantId: 1,
        retry,
        onEvent: (event) => events.push(event),
      });
      const lastStarted = () => events.filter((event) => event.type === 'entity-start').at(-1);
      let terminated = false;
      for (const deadline = Date.now() + 30_000; !terminated && Date.now() < deadline; ) {
        if (lastStarted()?.entity === 'register') {
          const { rows } = await database.pool.query(
            `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
              WHERE application_name = $1 AND state = 'active'
                AND query ~ '"register"' AND query !~ 'device_register'`,
            [application],
          );
          terminated = rows.some((row) => row.done === true);
        }
        if (!terminated) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const result = await running;
      expect(terminated).toBe(true);
      const register = result.entities.register;
      if (retry === false) {
        expect(register).toMatchObject({ status: 'failed', attempts: 1 });
        expect(register.error?.message).toMatch(/SQLSTATE 57P01/);
        expect(result.entities.device_register.status).toBe('failed');
        // Nothing of register reached the target, and no row was deleted.
        expect((await local.pool.query(registers)).rows).toEqual(targetBefore);
      } else {
        expect(result.ok).toBe(true);
        expect(register).toMatchObject({
          status: 'ok',
          attempts: 2,
          failedAttempts: [expect.objectContaining({ attempt: 1, code: '57P01', transient: true })],
          updated: 1,
          deleted: 1,
        });
        expect(events.some((event) => event.type === 'entity-retry')).toBe(true);
        await expectTargetEqualsTenant(remote.pool, local.pool);
      }
    },
  );

  it('does not retry a permanent failure: a source table the role may not read fails at once', async () => {
    const { remote, local } = await changedPair(`fleet_denied_${suffix}`);
    const denied = `fleet_denied_${suffix}`;
    await remote.pool.query(`CREATE ROLE "${denied}" LOGIN;
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO "${denied}";
      REVOKE SELECT ON "register" FROM "${denied}"`);
    try {
      const url = new URL(remote.url);
      url.username = denied;
      const source = new pg.Pool({ connectionString: url.toString() });
      clientsToEnd.push(source);
      const events: SyncEvent[] = [];
      const result = await performSync({
        source,
        target: local.pool,
        tenantId: 1,
        retry: { attempts: 5, initialDelayMs: 0, maxDelayMs: 0 },
        onEvent: (event) => events.push(event),
      });
      expect(result.entities.register).toMatchObject({
        status: 'failed',
        attempts: 1,
        failedAttempts: [expect.objectContaining({ attempt: 1, code: '42501', transient: false })],
      });
      expect(result.entities.device.attempts).toBe(1);
      expect(events.some((event) => event.type === 'entity-retry')).toBe(false);
    } finally {
      await remote.pool.query(`DROP OWNED BY "${denied}"`);
      await remote.pool.query(`DROP ROLE "${denied}"`).catch(() => undefined);
    }
  });
});
