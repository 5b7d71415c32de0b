import { syncSchemaSql } from 'meter-sync';
import { messageOf, sqlState } from '../../errors.js';
import { connectionHint, openPool } from '../connections.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { Outcome } from '../outcome.js';
import type { Output } from '../output.js';
import type { Settings } from '../settings.js';

/** `meter-sync init`: creates the built-in entities' tables in the sync database; idempotent. */
export async function runInitCommand(settings: Settings, output: Output): Promise<Outcome> {
  const connection = settings.connection('target');
  const pool = openPool(connection);
  try {
    await pool.query(syncSchemaSql);
  } catch (error) {
    const message = `creating the sync tables failed: ${messageOf(error)}`;
    throw new CliError(
      `${message}; ${isConnectionFailure(error) ? connectionHint('sync database', { target: connection }) : 'check that the role may create tables in the database'}`,
      ExitCode.usage,
    );
  } finally {
    await pool.end().catch(() => undefined);
  }
  const tables = ['device', 'meter', 'register', 'device_register'];
  if (!settings.json && !settings.quiet) {
    output.print(`sync database ready: ${connection.display} has the tables ${tables.join(', ')}`);
  }
  return { exitCode: ExitCode.ok, json: { created: tables } };
}

/** No SQLSTATE (the network), or one of the classes a server answers a refused login with. */
export function isConnectionFailure(error: unknown): boolean {
  const code = sqlState(error);
  return code === undefined || /^(08|28|3D|57P0)/.test(code);
}
