import pg from 'pg';
import type { MeterSyncConnection } from '../config/define-config.js';
import type { PgClient } from '../db/pg/pool.js';
import { messageOf } from '../errors.js';
import {
  ConnectionStringError,
  describeConfig,
  type ParsedConnection,
  parseConnectionString,
} from './connection-string.js';
import { CliError, ExitCode } from './exit-codes.js';

/** The two databases a command can take, with their option and environment variable. */
export const DATABASES = {
  source: { option: '--source', env: 'METER_SYNC_SOURCE_URL', role: 'the Client System' },
  target: { option: '--target', env: 'METER_SYNC_TARGET_URL', role: 'the sync database' },
} as const;

export type Side = keyof typeof DATABASES;

/** A connection as given, and where it was given: an option, a variable or the config file. */
export interface ConnectionInput {
  readonly value: MeterSyncConnection;
  /** `--source`, `METER_SYNC_SOURCE_URL`, `meter-sync.config.ts (source)`. */
  readonly origin: string;
}

/** A connection ready to open, with how to show it and where it came from. */
export interface ResolvedConnection extends ParsedConnection {
  readonly side: Side;
  readonly origin: string;
}

/** How long to wait for a connection before calling a database unreachable. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The connection for one side, parsed. Errors name where the value came from and never show
 * its password.
 */
export function resolveConnection(
  side: Side,
  input: ConnectionInput | undefined,
  configPath?: string,
): ResolvedConnection {
  const { option, env, role } = DATABASES[side];
  if (input === undefined || (typeof input.value === 'string' && input.value.trim() === '')) {
    const empty = input !== undefined ? `${input.origin} is empty; ` : '';
    throw new CliError(
      `no ${side} database: ${empty}give ${option} or set ${env} (the connection string of ${role})${configPath ? '' : ', or set it in meter-sync.config.ts'}`,
      ExitCode.usage,
    );
  }
  try {
    const parsed =
      typeof input.value === 'string'
        ? parseConnectionString(input.value)
        : describeConfig(input.value as Readonly<Record<string, unknown>>);
    return { ...parsed, side, origin: input.origin };
  } catch (error) {
    if (!(error instanceof ConnectionStringError)) throw error;
    throw new CliError(
      `${input.origin} ${error.message}; expected postgres://user@host:5432/database (a password percent-encoded) or host=… dbname=…`,
      ExitCode.usage,
    );
  }
}

/** A small pool: a sync uses one connection per side plus a short-lived probe. */
export function openPool(connection: ResolvedConnection): pg.Pool {
  const fromEnvironment = Number(process.env.PGCONNECT_TIMEOUT);
  const pool = new pg.Pool({
    // node-postgres reads PGCONNECT_TIMEOUT only when no timeout is given.
    connectionTimeoutMillis:
      Number.isFinite(fromEnvironment) && fromEnvironment > 0
        ? fromEnvironment * 1000
        : CONNECT_TIMEOUT_MS,
    // node-postgres reads PGAPPNAME only when no name is given.
    application_name: process.env.PGAPPNAME || 'meter-sync',
    ...connection.config,
    max: 3,
  } as pg.PoolConfig);
  // An idle connection dropped by the server must not crash the process; queries report errors.
  pool.on('error', () => undefined);
  return pool;
}

/** What to check when a side cannot be reached, for the one-line error. */
export function connectionHint(
  message: string,
  connections: Partial<Record<Side, ResolvedConnection>> = {},
): string {
  const side: Side | undefined = /\bsource\b/i.test(message)
    ? 'source'
    : /\bsync database\b|\btarget\b/i.test(message)
      ? 'target'
      : undefined;
  const named = (which: Side) => connections[which]?.origin ?? DATABASES[which].option;
  if (!side) {
    return `check ${named('source')} and ${named('target')} and that both servers accept connections`;
  }
  return `check ${named(side)} and that the server accepts connections`;
}

/**
 * A connection of `pool`, for statements of its own; a failure to connect is a usage error that
 * says what was being done and how to reach the database.
 */
export async function checkOut(
  pool: pg.Pool,
  connection: ResolvedConnection,
  role: string,
  action: string,
): Promise<PgClient> {
  try {
    return (await pool.connect()) as unknown as PgClient;
  } catch (error) {
    throw new CliError(
      `${action} failed: ${messageOf(error)}; ${connectionHint(role, { [connection.side]: connection })}`,
      ExitCode.usage,
      'DatabaseError',
    );
  }
}
