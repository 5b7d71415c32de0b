import pg from 'pg';
import { CliError, ExitCode } from './exit-codes.js';
import { maskSecrets } from './secrets.js';

/** The two databases a command can take, with their option and environment variable. */
export const DATABASES = {
  source: { option: '--source', env: 'METER_SYNC_SOURCE_URL', role: 'the Client System' },
  target: { option: '--target', env: 'METER_SYNC_TARGET_URL', role: 'the sync database' },
} as const;

export type Side = keyof typeof DATABASES;

/** How long to wait for a connection before calling a database unreachable. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The connection string for one side, from its option or environment variable (commander has
 * merged the two), checked to be a PostgreSQL URL.
 */
export function requireUrl(side: Side, value: string | undefined): string {
  const { option, env, role } = DATABASES[side];
  if (value === undefined || value.trim() === '') {
    throw new CliError(
      `no ${side} database: give ${option} URL or set ${env} (the connection string of ${role})`,
      ExitCode.usage,
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(
      `${option} "${maskSecrets(value)}" is not a URL; expected postgres://user:password@host:5432/database`,
      ExitCode.usage,
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new CliError(
      `${option} must be a postgres:// or postgresql:// URL, got ${url.protocol}//…`,
      ExitCode.usage,
    );
  }
  return value;
}

/** A small pool on `url`: a sync uses one connection per side plus a short-lived probe. */
export function openPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'meter-sync',
  });
  // An idle connection dropped by the server must not crash the process; queries report errors.
  pool.on('error', () => undefined);
  return pool;
}

/** What to check when a side cannot be reached, for the one-line error. */
export function connectionHint(message: string): string {
  const side: Side | undefined = /\bsource\b/i.test(message)
    ? 'source'
    : /\bsync database\b|\btarget\b/i.test(message)
      ? 'target'
      : undefined;
  if (!side) {
    return 'check --source / --target (or METER_SYNC_SOURCE_URL / METER_SYNC_TARGET_URL) and that both servers accept connections';
  }
  const { option, env } = DATABASES[side];
  return `check ${option} (or ${env}) and that the server accepts connections`;
}
