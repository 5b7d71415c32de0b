/**
 * The sync lock: keeps two syncs into one sync database apart, also when the sync database is
 * reached through PgBouncer in transaction pooling, where nothing a session holds (a
 * session-level advisory lock, a `SET`) stays with the client that took it.
 *
 * A lease ROW in `meter_sync_lock`, written in statements of their own (each its own
 * transaction, so it works through a transaction pooler and leaves no session state behind):
 *
 * - taken with one `INSERT … ON CONFLICT … DO UPDATE … WHERE` that succeeds when the row is
 *   free: absent, held by the same run, past its lease (`expires_at`), or recorded by a server
 *   session (`backend_pid`, `backend_start`) that no longer exists. The last one releases the
 *   lock of a process that died on a direct connection as soon as the server ends its session;
 *   through a pooler, the server session outlives its clients, and the lease's expiry does it.
 * - renewed by its holder before each entity's transaction (but where it was taken or renewed
 *   within a tenth of its lease) and on a heartbeat; a renewal that finds the row taken over
 *   (the holder stalled past its lease) fails the run with `LockedError`.
 * - deleted at the end of the run.
 *
 * Each entity's transaction also takes `pg_advisory_xact_lock` on the same key as the old
 * session lock: transaction-scoped, so it holds through a pooler, and it keeps entity
 * transactions of two runs apart even in the moment a stalled holder's lease is taken over.
 * A run that waits for the lock (`lock: 'wait'`) waits on that advisory lock, then looks at the
 * row again; a run that will not wait is also refused while the key is held, so a session-level
 * advisory lock on it (meter-sync before the lock row, or an operator) keeps runs out as it did.
 *
 * Times are the server's (`clock_timestamp()`): the hosts' clocks need not agree.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { quoteIdent, RUN_LOCK_KEY, type Statement } from './sql.js';

/** The table of the lock row. */
export const SYNC_LOCK_TABLE = 'meter_sync_lock';

/** The row's name: one sync lock per sync database. */
const LOCK_NAME = 'sync';

/**
 * The lock row's table, as an idempotent statement: part of `syncSchemaSql`, run by `meter-sync
 * init`, and created on first use when the role may.
 */
export const syncLockTableSql = `CREATE TABLE IF NOT EXISTS ${quoteIdent(SYNC_LOCK_TABLE)} (
  "name" text PRIMARY KEY,
  "holder" text NOT NULL,
  "backend_pid" integer,
  "backend_start" timestamptz,
  "acquired_at" timestamptz NOT NULL,
  "expires_at" timestamptz NOT NULL
);`;

/** How long a lease lasts without renewal, by default. */
export const DEFAULT_LOCK_LEASE_MS = 60_000;

const table = quoteIdent(SYNC_LOCK_TABLE);
const lease = (parameter: string) =>
  `clock_timestamp() + CAST(${parameter} AS integer) * interval '1 millisecond'`;
const thisBackend = `pg_backend_pid(), (SELECT "backend_start" FROM pg_stat_activity WHERE "pid" = pg_backend_pid())`;

/** A run's name in the lock row: where it runs, and a random part to tell runs apart. */
export function newHolder(): string {
  return `${hostname()} pid ${process.pid} run ${randomBytes(6).toString('hex')}`;
}

/** Takes the row if it is free (see the module comment); returns a row when it was taken. */
export function acquireLock(holder: string, leaseMs: number): Statement {
  return {
    text: `INSERT INTO ${table} AS "held" ("name", "holder", "backend_pid", "backend_start", "acquired_at", "expires_at")
VALUES ($1, $2, ${thisBackend}, clock_timestamp(), ${lease('$3')})
ON CONFLICT ("name") DO UPDATE SET "holder" = EXCLUDED."holder", "backend_pid" = EXCLUDED."backend_pid",
  "backend_start" = EXCLUDED."backend_start", "acquired_at" = EXCLUDED."acquired_at", "expires_at" = EXCLUDED."expires_at"
WHERE "held"."holder" = EXCLUDED."holder"
  OR "held"."expires_at" < clock_timestamp()
  OR NOT EXISTS (SELECT FROM pg_stat_activity AS "s" WHERE "s"."pid" = "held"."backend_pid"
    AND ("s"."backend_start" IS NULL OR "s"."backend_start" = "held"."backend_start"))
RETURNING "holder"`,
    values: [LOCK_NAME, holder, leaseMs],
  };
}

/**
 * Extends the holder's lease; with `backend`, also records the server session it runs on now
 * (the run's own connection, which may have been replaced since). No row: the lock is not ours.
 */
export function renewLock(holder: string, leaseMs: number, backend: boolean): Statement {
  const recorded = backend ? `, ("backend_pid", "backend_start") = (SELECT ${thisBackend})` : '';
  return {
    text: `UPDATE ${table} SET "expires_at" = ${lease('$3')}${recorded} WHERE "name" = $1 AND "holder" = $2 RETURNING "holder"`,
    values: [LOCK_NAME, holder, leaseMs],
  };
}

/** Deletes the row if it is still the holder's. */
export function releaseLock(holder: string): Statement {
  return {
    text: `DELETE FROM ${table} WHERE "name" = $1 AND "holder" = $2`,
    values: [LOCK_NAME, holder],
  };
}

/** Who holds the row, for the message of a run refused. */
export function lockHolder(): Statement {
  return {
    text: `SELECT "holder", "acquired_at"::text AS "acquired_at", "expires_at"::text AS "expires_at" FROM ${table} WHERE "name" = $1`,
    values: [LOCK_NAME],
  };
}

/** Held by each entity's transaction of a run that holds the lock row; waited on by a waiter. */
export const ENTITY_GUARD: Statement = {
  text: 'SELECT pg_advisory_xact_lock($1, $2)',
  values: [...RUN_LOCK_KEY],
};

/**
 * The same key, tried: a run that will not wait is refused while anyone holds it, be it the
 * holder's entity transaction or a session-level lock on it (meter-sync before the lock row).
 */
export const TRY_ENTITY_GUARD: Statement = {
  text: 'SELECT pg_try_advisory_xact_lock($1, $2) AS "free"',
  values: [...RUN_LOCK_KEY],
};

/** The lock row's holder as a message says it. */
export function describeHolder(row: Record<string, unknown> | undefined): string {
  if (!row) return 'a sync that has just finished';
  return `${String(row.holder)}, since ${String(row.acquired_at)}, lease until ${String(row.expires_at)}`;
}
