/**
 * Which failures of a PostgreSQL connection pass by themselves, so that the same work, tried again
 * a moment later on a fresh connection, can succeed: the verdict `withRetries` (engine/retry.ts)
 * asks for.
 *
 * Transient:
 * - the network: node's `ECONNREFUSED`, `ECONNRESET`, `EPIPE`, `ETIMEDOUT`, `ECONNABORTED`,
 *   `EHOSTUNREACH`, `ENETUNREACH`, `EAI_AGAIN`; node-postgres's "Connection terminated
 *   unexpectedly", its connect timeout ("timeout expired"), pg-pool's ("Connection terminated
 *   due to connection timeout", "timeout exceeded when trying to connect");
 * - SQLSTATE class 08 (connection exception), except 08P01 from PostgreSQL itself, see below;
 * - 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up, shutting
 *   down, in recovery), 57P05 idle_session_timeout (the connection is gone, a new one works);
 * - 40001 serialization_failure and 40P01 deadlock_detected: the transaction lost a race. On a
 *   hot standby, PostgreSQL 15 reports recovery conflicts with these two codes ("canceling
 *   statement due to conflict with recovery", "terminating connection due to conflict with
 *   recovery"; 40P01 for a buffer-pin deadlock with the startup process);
 * - 53300 too_many_connections (server-wide or per-role limit): connections come free;
 * - 57014 query_canceled only when it names a recovery conflict; a statement_timeout would only
 *   time out again;
 * - PgBouncer's own errors, which it sends as 08P01: "server conn crashed?", "no more
 *   connections allowed (max_client_conn)", "query_wait_timeout", "client_login_timeout",
 *   "server login has been failing, try again later", "pgbouncer cannot connect to server",
 *   "database shutting down", "server_connect_timeout".
 *
 * Not transient: everything else — syntax (42601), privileges (42501), authentication (28P01,
 * 28000), missing objects (42P01, 42703, 3D000), data (class 22, class 23), statement_timeout
 * (57014) and lock_timeout (55P03: the caller's own bound on waiting, which a retry would
 * multiply by the attempts; the next run tries again), read-only transaction (25006), 57P04 database_dropped (on a standby, the recovery
 * conflict of a `DROP DATABASE` on the primary: the database is gone, a new connection fails
 * with 3D000), 08P01 from PostgreSQL (a protocol violation: a bug, not weather) and PgBouncer's
 * configuration errors ("no such database", "no such user", authentication failures); and
 * meter-sync's own verdicts: `DataError`, `DefinitionError`, `ConfigurationError`,
 * `SchemaError`, and `LockedError` (another sync holds the sync lock: the schedule, or
 * `lock: 'wait'`, deals with that).
 */
import {
  ConfigurationError,
  DataError,
  DefinitionError,
  LockedError,
  MeterSyncError,
  messageOf,
  SchemaError,
} from '../../errors.js';

/** node's errno codes of a network that failed on the way. */
const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

const TRANSIENT_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57P05', // idle_session_timeout
  '40001', // serialization_failure (and recovery conflicts on a standby)
  '40P01', // deadlock_detected (and buffer-pin deadlocks with recovery)
  '53300', // too_many_connections
]);

/** Messages of node-postgres and pg-pool for a connection that failed or never came. */
const TRANSIENT_DRIVER_MESSAGES = [
  /^Connection terminated unexpectedly$/,
  /^Connection terminated due to connection timeout$/,
  /^timeout expired$/,
  /^timeout exceeded when trying to connect$/,
  /^Client has encountered a connection error and is not queryable$/,
];

/** PgBouncer's own 08P01 errors that pass: a crashed or missing server, a full pool. */
const PGBOUNCER_TRANSIENT = [
  /server conn crashed\?/,
  /no more connections allowed \(max_client_conn\)/,
  /query_wait_timeout/,
  /client_login_timeout/,
  /server login has been failing, try again later/,
  /pgbouncer cannot connect to server/,
  /database shutting down/,
  /server_connect_timeout/,
  /server DNS lookup failed/,
];

const RECOVERY_CONFLICT = /conflict with recovery/;

/** The causes looked through before giving up: a guard against cycles and endless chains. */
const MAX_DEPTH = 16;

/**
 * True when `error` is a failure that may pass if the same work is tried again later on a fresh
 * connection (see the module comment for the list and the reasons). Looks through `cause`
 * chains — a `DatabaseError` wrapping a driver error is judged by the driver error — and through
 * an `AggregateError` (node's connection attempts to several addresses), which is transient when
 * each of its errors is.
 */
export function isTransientError(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (typeof current !== 'object' || current === null || seen.has(current)) return false;
    seen.add(current);
    const verdict = judge(current);
    if (verdict !== undefined) return verdict;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** The verdict on one error of a chain, or `undefined` to look at its cause. */
function judge(error: object): boolean | undefined {
  if (
    error instanceof DataError ||
    error instanceof DefinitionError ||
    error instanceof ConfigurationError ||
    error instanceof SchemaError ||
    error instanceof LockedError
  ) {
    return false;
  }
  // A wrapper (a DatabaseError carrying the driver's error) is judged by what it wraps.
  if (error instanceof MeterSyncError && error.cause !== undefined) return undefined;
  const code = (error as { code?: unknown }).code;
  const message = messageOf(error);
  if (typeof code === 'string') {
    if (TRANSIENT_ERRNO.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return sqlStateIsTransient(code, message);
  }
  if (error instanceof AggregateError && error.errors.length > 0) {
    return error.errors.every((inner) => isTransientError(inner));
  }
  if (error instanceof MeterSyncError) return undefined;
  if (TRANSIENT_DRIVER_MESSAGES.some((pattern) => pattern.test(message))) return true;
  return undefined;
}

function sqlStateIsTransient(code: string, message: string): boolean {
  if (TRANSIENT_SQLSTATES.has(code)) return true;
  if (code === '08P01') return PGBOUNCER_TRANSIENT.some((pattern) => pattern.test(message));
  if (code.startsWith('08')) return true;
  if (code === '57014') return RECOVERY_CONFLICT.test(message);
  return false;
}
