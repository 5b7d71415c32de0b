import type { PgClient } from './pool.js';
import { SERVER_VERSION } from './sql.js';

/** What the connected engine can do; decides which SQL the library sends. */
export interface Capabilities {
  /** `postgresql` for a real server (or PGlite); `emulated` for pg-mem and other partial engines. */
  readonly engine: 'postgresql' | 'emulated';
  /** `server_version_num`, e.g. 150018, when known. */
  readonly serverVersion: number | undefined;
  /** Whether ROLLBACK undoes writes and savepoints work. pg-mem's pg adapter does neither. */
  readonly transactional: boolean;
  /** Whether the system catalog (`pg_attribute`, `to_regclass`) can describe tables. */
  readonly catalog: boolean;
}

const EMULATED: Capabilities = {
  engine: 'emulated',
  serverVersion: undefined,
  transactional: false,
  catalog: false,
};

/**
 * Asks the engine for its version. Must run outside a transaction: on an engine that lacks
 * `current_setting` the failed statement would otherwise abort it.
 */
export async function detectCapabilities(client: PgClient): Promise<Capabilities> {
  let version: number;
  try {
    const result = await client.query({ text: SERVER_VERSION });
    version = Number(result.rows[0]?.version);
  } catch {
    return EMULATED;
  }
  if (!Number.isFinite(version)) return EMULATED;
  return { engine: 'postgresql', serverVersion: version, transactional: true, catalog: true };
}
