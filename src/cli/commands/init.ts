import { builtInEntities, syncSchemaSql } from '../../builtins/index.js';
import { messageOf, sqlState } from '../../errors.js';
import { connectionHint, openPool, requireUrl } from '../connections.js';
import { CliError, ExitCode, type ExitCodeValue } from '../exit-codes.js';
import type { Output } from '../output.js';
import { passwordsIn } from '../secrets.js';

/** `meter-sync init`: creates the built-in entities' tables in the sync database; idempotent. */
export async function runInitCommand(
  options: { readonly target?: string | undefined },
  output: Output,
): Promise<ExitCodeValue> {
  const targetUrl = requireUrl('target', options.target);
  output.hide(passwordsIn([targetUrl]));
  const pool = openPool(targetUrl);
  try {
    await pool.query(syncSchemaSql);
  } catch (error) {
    const message = `creating the sync tables failed: ${messageOf(error)}`;
    throw new CliError(
      `${message}; ${isConnectionFailure(error) ? connectionHint('sync database') : 'check that the role may create tables in the database'}`,
      ExitCode.usage,
    );
  } finally {
    await pool.end().catch(() => undefined);
  }
  const tables = builtInEntities.map((entity) => entity.table.name).join(', ');
  output.print(`sync database ready: ${targetUrl} has the tables ${tables}`);
  return ExitCode.ok;
}

/** No SQLSTATE (the network), or one of the classes a server answers a refused login with. */
function isConnectionFailure(error: unknown): boolean {
  const code = sqlState(error);
  return code === undefined || /^(08|28|3D|57P0)/.test(code);
}
