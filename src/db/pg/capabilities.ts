import { onConnectionLost, type PgClient, type PgPool } from './pool.js';
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
 * Asks the engine its version on a connection of its own: an engine that cannot tell it (pg-mem)
 * is an emulator.
 */
export async function detectCapabilities(pool: PgPool): Promise<Capabilities> {
  const client = await pool.connect();
  // A lost connection also fails the probe's query, which says what to do with it.
  const stopListening = onConnectionLost(client, () => undefined);
  try {
    return await probe(client);
  } finally {
    stopListening();
  }
}

async function probe(client: PgClient): Promise<Capabilities> {
  let version: number;
  try {
    const result = await client.query({ text: SERVER_VERSION });
    version = Number(result.rows[0]?.version);
  } catch {
    client.release();
    return EMULATED;
  }
  if (!Number.isFinite(version)) {
    client.release();
    return EMULATED;
  }
  client.release();
  return {
    engine: 'postgresql',
    serverVersion: version,
    transactional: true,
    catalog: true,
  };
}
