/**
 * One site's agent in the fleet benchmark: a long-lived process, started by bench/fleet.ts, that
 * syncs its tenant each time the benchmark asks (over the IPC channel) and answers with what the
 * run cost the source.
 *
 *   node --import tsx bench/fleet-agent.ts      (IPC only; bench/fleet.ts starts it)
 *
 * Each run opens its own pools and closes them at its end, as a site's agent does between runs
 * minutes apart (the CLI's pool drops a connection idle for 10 s), so the source backend's
 * start-up is part of the run. Modes: `incremental` (performSync with the built-in entities),
 * `full` (the same with `incremental: false`: every row compared) and `naive` (every row of the
 * tenant's tables and the whole device_register table read from the source, diffed in memory
 * against the sync database and written row by row).
 *
 * What a run reports: its wall time (from opening the pools to the sync's end), the bytes read on
 * its source sockets, and the CPU time of its source backends (utime + stime from
 * /proc/<pid>/stat, and the on-CPU nanoseconds of /proc/<pid>/schedstat), read after the sync and
 * before the pool closes the connections. A backend's counters start at zero when the server
 * forks it, so a fresh connection's figures are the run's own.
 *
 * Through PgBouncer (`ownBackends: false`) the source sockets lead to PgBouncer, whose server
 * connections outlive the run and whose pid on the socket is not a backend's: the agent reports
 * no CPU, and bench/fleet.ts reads the server backends itself at the run's start and end.
 */
import pg from 'pg';
import { type EntityResult, performSync } from '../src/index.js';
import { type ProcReading, readProc } from './proc.js';

export type FleetMode = 'incremental' | 'full' | 'naive';

/** What the benchmark sends: one run. */
export interface RunRequest {
  readonly run: number;
  readonly mode: FleetMode;
  readonly tenantId: number;
  readonly sourceUrl: string;
  readonly targetUrl: string;
  readonly applicationName: string;
  /**
   * True when each source connection is a backend of its own (direct): the agent reads the
   * backends' CPU. False through PgBouncer.
   */
  readonly ownBackends: boolean;
}

/** CPU time of the source backends a run used. */
export interface BackendCpu {
  /** utime + stime, in clock ticks (`getconf CLK_TCK`). */
  readonly ticks: number;
  /** Time on a CPU in nanoseconds (schedstat); null where the kernel does not keep it. */
  readonly ns: number | null;
  /** Source backends the run used. */
  readonly backends: number;
  /** Backends gone before they could be read (their CPU is missing from the figures). */
  readonly unread: number;
}

/** What an agent answers. */
export interface RunReport {
  readonly run: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly ms: number;
  readonly sourceBytes: number;
  /** Null when the source connections are not backends of their own (through PgBouncer). */
  readonly cpu: BackendCpu | null;
  /** Rows the naive agent received from the source (the library's count comes from the server). */
  readonly rowsReceived?: number;
  /** Per entity: rows written and how changes were found. */
  readonly entities: Record<
    string,
    { inserted: number; updated: number; deleted: number; unchanged: number; detection?: string }
  >;
}

type SocketClient = pg.PoolClient & {
  processID?: number | null;
  connection: { stream: { bytesRead?: number } };
};

/**
 * A pool whose connections are watched: bytes read from the server, and the backends' CPU when
 * each connection is a backend of its own (`ownBackends`).
 */
function watchedPool(url: string, applicationName: string, ownBackends: boolean) {
  // No idle timeout: a backend must live until its CPU has been read.
  const pool = new pg.Pool({
    connectionString: url,
    application_name: applicationName,
    max: 3,
    idleTimeoutMillis: 0,
  });
  pool.on('error', () => undefined);
  const clients = new Set<SocketClient>();
  const last = new Map<SocketClient, ProcReading>();
  pool.on('connect', (client) => clients.add(client as SocketClient));
  // A connection dropped during the run: read its backend while it may still be there.
  pool.on('remove', (client) => {
    if (!ownBackends) return;
    const pid = (client as SocketClient).processID;
    const reading = pid ? readProc(pid) : undefined;
    if (reading) last.set(client as SocketClient, reading);
  });
  return {
    pool,
    bytes: () =>
      [...clients].reduce((sum, client) => sum + (client.connection.stream.bytesRead ?? 0), 0),
    cpu: (): BackendCpu | null => {
      if (!ownBackends) return null;
      let ticks = 0;
      let ns: number | null = 0;
      let unread = 0;
      for (const client of clients) {
        const reading =
          (client.processID ? readProc(client.processID) : undefined) ?? last.get(client);
        if (!reading) {
          unread++;
          continue;
        }
        ticks += reading.ticks;
        ns = ns === null || reading.ns === null ? null : ns + reading.ns;
      }
      return { ticks, ns, backends: clients.size, unread };
    },
  };
}

async function meterSync(
  request: RunRequest,
  source: pg.Pool,
  target: pg.Pool,
): Promise<Pick<RunReport, 'entities'>> {
  const result = await performSync({
    source,
    target,
    tenantId: request.tenantId,
    incremental: request.mode === 'incremental',
  });
  const entities: RunReport['entities'] = {};
  const failures: string[] = [];
  for (const [name, entity] of Object.entries<EntityResult>(result.entities)) {
    if (entity.status !== 'ok') failures.push(entity.error?.message ?? `${name} failed`);
    const { inserted, updated, deleted, unchanged } = entity;
    entities[name] = {
      inserted,
      updated,
      deleted,
      unchanged,
      ...(entity.detection ? { detection: entity.detection.mode } : {}),
    };
  }
  if (failures.length > 0) throw new Error(failures.join('; '));
  return { entities };
}

type Row = Record<string, unknown>;

/** A table of the sync database as the naive agent writes it. */
interface NaiveTable {
  readonly name: string;
  readonly key: readonly string[];
  readonly columns: readonly string[];
}

const NAIVE_TABLES: readonly NaiveTable[] = [
  {
    name: 'device',
    key: ['device_id'],
    columns: ['device_id', 'manufacturer', 'model_number', 'description', 'type', 'active'],
  },
  {
    name: 'meter',
    key: ['meter_id', 'meter_element_id'],
    columns: [
      'meter_id',
      'meter_element_id',
      'tenant_id',
      'name',
      'element',
      'device_id',
      'ip',
      'port',
      'active',
    ],
  },
  {
    name: 'register',
    key: ['register_id'],
    columns: ['register_id', 'tenant_id', 'name', 'register', 'unit', 'field_name'],
  },
  {
    name: 'device_register',
    key: ['device_id', 'register_id'],
    columns: ['device_id', 'register_id'],
  },
];

const text = (value: unknown) =>
  value === null || value === undefined
    ? null
    : value instanceof Date
      ? value.toISOString()
      : String(value);
const keyOf = (table: NaiveTable, row: Row) => JSON.stringify(table.key.map((c) => text(row[c])));
const valuesOf = (table: NaiveTable, row: Row) =>
  JSON.stringify(table.columns.map((c) => text(row[c])));

/**
 * The design without change detection or the semi-join: every row of the tenant's tables and
 * the whole device_register table come from the source (in one read-only snapshot), the target's
 * rows are read, the two are diffed in memory, and each difference is one statement, in one
 * transaction on the target.
 */
async function naive(
  request: RunRequest,
  source: pg.Pool,
  target: pg.Pool,
): Promise<Pick<RunReport, 'entities' | 'rowsReceived'>> {
  const tenant = request.tenantId;
  const reader = await source.connect();
  let fromSource: Record<string, Row[]>;
  let rowsReceived = 0;
  try {
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const read = async (sql: string, values: unknown[] = []) => {
      const { rows } = await reader.query(sql, values);
      rowsReceived += rows.length;
      return rows as Row[];
    };
    const devices = await read('SELECT * FROM device');
    const meters = await read('SELECT * FROM meter WHERE tenant_id = $1', [tenant]);
    const elements = await read('SELECT * FROM meter_element WHERE tenant_id = $1', [tenant]);
    const registers = await read('SELECT * FROM register WHERE tenant_id = $1', [tenant]);
    const links = await read('SELECT * FROM device_register');
    await reader.query('COMMIT');
    const meterById = new Map(meters.map((m) => [String(m.meter_id), m]));
    const ours = new Set(registers.map((r) => String(r.register_id)));
    fromSource = {
      device: devices,
      meter: elements.flatMap((e) => {
        const m = meterById.get(String(e.meter_id));
        return m
          ? [
              {
                meter_id: m.meter_id,
                meter_element_id: e.meter_element_id,
                tenant_id: m.tenant_id,
                name: `${m.name}-${e.name}`,
                element: e.element,
                device_id: m.device_id,
                ip: m.ip,
                port: m.port,
                active: m.active,
              },
            ]
          : [];
      }),
      register: registers,
      device_register: links.filter((l) => ours.has(String(l.register_id))),
    };
  } finally {
    reader.release();
  }

  const writer = await target.connect();
  const entities: RunReport['entities'] = {};
  try {
    await writer.query('BEGIN');
    const stored: Record<string, Map<string, { row: Row; values: string }>> = {};
    for (const table of NAIVE_TABLES) {
      const scoped = table.columns.includes('tenant_id') ? ' WHERE tenant_id = $1' : '';
      const { rows } = await writer.query(
        `SELECT ${table.columns.join(', ')} FROM "${table.name}"${scoped}`,
        scoped ? [tenant] : [],
      );
      stored[table.name] = new Map(
        (rows as Row[]).map((row) => [keyOf(table, row), { row, values: valuesOf(table, row) }]),
      );
    }
    // Inserts and updates parents first, deletes children first.
    for (const table of NAIVE_TABLES) {
      const counts = { inserted: 0, updated: 0, deleted: 0, unchanged: 0 };
      entities[table.name] = counts;
      const existing = stored[table.name] as Map<string, { row: Row; values: string }>;
      const others = table.columns.filter((c) => !table.key.includes(c));
      const upsert = `INSERT INTO "${table.name}" (${table.columns.join(', ')})
        VALUES (${table.columns.map((_, i) => `$${i + 1}`).join(', ')})
        ON CONFLICT (${table.key.join(', ')}) DO ${
          others.length === 0
            ? 'NOTHING'
            : `UPDATE SET ${others.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
        }`;
      for (const row of fromSource[table.name] ?? []) {
        const key = keyOf(table, row);
        const before = existing.get(key);
        existing.delete(key);
        if (before?.values === valuesOf(table, row)) {
          counts.unchanged++;
          continue;
        }
        await writer.query(
          upsert,
          table.columns.map((c) => row[c]),
        );
        if (before === undefined) counts.inserted++;
        else counts.updated++;
      }
    }
    for (const table of [...NAIVE_TABLES].reverse()) {
      const counts = entities[table.name] as { deleted: number };
      const where = table.key.map((c, i) => `${c} = $${i + 1}`).join(' AND ');
      for (const { row } of (stored[table.name] as Map<string, { row: Row }>).values()) {
        await writer.query(
          `DELETE FROM "${table.name}" WHERE ${where}`,
          table.key.map((c) => row[c]),
        );
        counts.deleted++;
      }
    }
    await writer.query('COMMIT');
  } catch (error) {
    await writer.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    writer.release();
  }
  return { entities, rowsReceived };
}

async function runOnce(request: RunRequest): Promise<RunReport> {
  const startedAt = Date.now();
  const started = performance.now();
  const source = watchedPool(request.sourceUrl, request.applicationName, request.ownBackends);
  const target = new pg.Pool({
    connectionString: request.targetUrl,
    application_name: request.applicationName,
    max: 3,
  });
  target.on('error', () => undefined);
  let outcome: Pick<RunReport, 'entities' | 'rowsReceived'> = { entities: {} };
  let error: string | undefined;
  try {
    outcome =
      request.mode === 'naive'
        ? await naive(request, source.pool, target)
        : await meterSync(request, source.pool, target);
  } catch (caught) {
    error = caught instanceof Error ? caught.message : String(caught);
  }
  const ms = performance.now() - started;
  const finishedAt = Date.now();
  // Read before the pool ends the connections, and with them the backends.
  const cpu = source.cpu();
  const sourceBytes = source.bytes();
  await Promise.all([source.pool.end(), target.end()]).catch(() => undefined);
  return {
    run: request.run,
    ok: error === undefined,
    ...(error === undefined ? {} : { error }),
    startedAt,
    finishedAt,
    ms,
    sourceBytes,
    cpu,
    ...outcome,
  };
}

if (!process.send) throw new Error('bench/fleet-agent.ts runs under bench/fleet.ts (IPC)');
process.on('message', (message: RunRequest | 'exit') => {
  if (message === 'exit') {
    process.disconnect();
    return;
  }
  void runOnce(message).then((report) => process.send?.(report));
});
process.send('ready');
