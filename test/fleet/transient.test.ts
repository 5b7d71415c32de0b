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
import {
  ConfigurationError,
  DatabaseError,
  DataError,
  DefinitionError,
  LockedError,
  MeterSyncError,
  SchemaError,
} from '../../src/errors.js';
import { capture, closedPort, misbehavingServer } from '../support/capture.js';
import { createDatabase } from '../support/postgres.js';

const suffix = randomBytes(4).toString('hex');
const reader = `fleet_reader_${suffix}`;
const single = `fleet_single_${suffix}`;
let database: { name: string; url: string; pool: pg.Pool };
const clients: pg.Client[] = [];

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
