/**
 * A throwaway PostgreSQL server per fault test file, with databases made on it, and the probes
 * the fault tests share: sessions by application name, open transactions, table contents.
 */
import pg from 'pg';
import { type PostgresServer, startPostgres } from '../../../scripts/postgres.js';

export { idleInTransaction } from '../../support/built-in-pair.js';

/** The application name of the test's own sessions (probes, setup, checks). */
export const TEST_SESSIONS = 'faults-test';

export interface Cluster {
  readonly server: PostgresServer;
  /** Superuser pool on the `postgres` database, for probes and fault injection. */
  readonly admin: pg.Pool;
  /** Creates an empty database; its connection string carries `application_name` if given. */
  createDatabase(name: string): Promise<string>;
  /** A pool of its own, ended by `stop()`. */
  pool(url: string, options?: pg.PoolConfig): pg.Pool;
  /** Ends every pool and stops the server. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a server for one test file. `client_connection_check_interval` makes a backend notice
 * within 50 ms that its client process died, so a killed sync's statement stops at once instead
 * of running to its end.
 */
export async function startCluster(settings: Record<string, string | number> = {}) {
  const server = await startPostgres({
    settings: { client_connection_check_interval: 50, ...settings },
  });
  const pools: pg.Pool[] = [];
  const pool = (url: string, options: pg.PoolConfig = {}) => {
    // An application_name in the URL wins over this default.
    const created = new pg.Pool({
      connectionString: url,
      max: 4,
      application_name: TEST_SESSIONS,
      ...options,
    });
    // A pool reports the loss of an idle connection (a restart, a terminated backend) as an
    // 'error' event; node-postgres expects a listener, without one the process dies.
    created.on('error', () => undefined);
    pools.push(created);
    return created;
  };
  const admin = pool(server.url('postgres'), { max: 3 });
  let stopped = false;
  const cluster: Cluster = {
    server,
    admin,
    async createDatabase(name) {
      await admin.query(`CREATE DATABASE "${name}"`);
      return server.url(name);
    },
    pool,
    async stop() {
      if (stopped) return;
      stopped = true;
      // pool.end() waits for checked-out clients: a test that failed while holding one must
      // not keep the server up.
      await Promise.race([
        Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined))),
        sleep(5_000),
      ]);
      await server.stop();
    },
  };
  return cluster;
}

/** `url` with `application_name` set, so its sessions can be found in `pg_stat_activity`. */
export function withApplicationName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('application_name', name);
  return parsed.toString();
}

export interface Session {
  readonly pid: number;
  readonly datname: string;
  readonly state: string | null;
  readonly waitEventType: string | null;
  readonly query: string;
  /** Whether its transaction has written (an xid was assigned), committed or not. */
  readonly wrote: boolean;
}

/** The sessions of one application (by `application_name`), optionally in one database. */
export async function sessionsOf(
  admin: pg.Pool,
  applicationName: string,
  database?: string,
): Promise<Session[]> {
  const { rows } = await admin.query(
    `SELECT pid, datname, state, wait_event_type AS "waitEventType", query, backend_xid IS NOT NULL AS wrote
       FROM pg_stat_activity
      WHERE application_name = $1 AND ($2::text IS NULL OR datname = $2) AND pid <> pg_backend_pid()`,
    [applicationName, database ?? null],
  );
  return rows as Session[];
}

/** Client sessions connected to a database, other than the test's own. */
export async function connectionsTo(admin: pg.Pool, database: string): Promise<number> {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = $1 AND backend_type = 'client backend' AND application_name <> $2`,
    [database, TEST_SESSIONS],
  );
  return rows[0].n;
}

/**
 * Polls `probe` until `done` holds for its value; returns that value. Throws with the last value
 * seen once `timeoutMs` has passed: the bound on a wait, never a verdict on speed.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 15_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${show(value)}`);
    }
    await sleep(everyMs);
  }
}

const show = (value: unknown) =>
  JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v))?.slice(0, 500);

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The rows of `select` as one text each, sorted: `select` must return a single text column named
 * `r` (e.g. `ROW(a::text, b::text)::text AS r`). Comparing two such lists compares the row sets.
 */
export async function rowTexts(pool: pg.Pool, select: string, values: unknown[] = []) {
  const { rows } = await pool.query(`SELECT r FROM (${select}) AS rows_as_text ORDER BY r`, values);
  return rows.map((row: { r: string }) => row.r);
}

/** What differs between two sorted row lists: a few rows only on either side. */
export function rowDifference(expected: readonly string[], actual: readonly string[]) {
  const want = new Set(expected);
  const have = new Set(actual);
  return {
    missing: expected.filter((row) => !have.has(row)).slice(0, 5),
    unexpected: actual.filter((row) => !want.has(row)).slice(0, 5),
  };
}
