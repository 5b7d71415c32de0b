/**
 * Runs one benchmark task in a process of its own, so its peak RSS is its own, and prints one
 * JSON line: wall time of the task alone, peak RSS, and bytes received from the source.
 *
 *   tsx bench/worker.ts <task> <sourceUrl> <targetUrl>
 *
 * Tasks: meter-sync (performSync with col schemas), meter-sync-zod (the same entity in plain zod),
 * meter-sync-dry (a dry run), naive (full fetch of both sides, in-memory diff, row-by-row
 * upsert: the design meter-sync replaces), copy-pipe (COPY TO STDOUT piped into COPY FROM STDIN:
 * the transfer limit of an initial sync), hash-scan and hash-scan-parallel (one full-table hash
 * scan of the source, in one process or with the server's parallel workers), text-hash-scan
 * (the same over each row's text, `hashtextextended(r::text, 0)`), count (`count(*)` of the
 * tenant's rows: the least any run that looks at every row can cost).
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { combinedHash, type TypeClass } from '../src/db/pg/column-types.js';
import { performSync } from '../src/index.js';
import { COLUMNS, readingRegister, readingRegisterPlain } from './data.js';

type Task =
  | 'meter-sync'
  | 'meter-sync-zod'
  | 'meter-sync-dry'
  | 'naive'
  | 'copy-pipe'
  | 'hash-scan'
  | 'hash-scan-parallel'
  | 'text-hash-scan'
  | 'count';

const [task, sourceUrl, targetUrl] = process.argv.slice(2) as [Task, string, string];
const source = new pg.Pool({ connectionString: sourceUrl, max: 2 });
const target = new pg.Pool({ connectionString: targetUrl, max: 2 });
const sourceClients = new Set<pg.PoolClient>();
source.on('connect', (client) => sourceClients.add(client));

const bytesFromSource = () =>
  [...sourceClients].reduce(
    (sum, client) =>
      sum +
      ((client as unknown as { connection: { stream: { bytesRead: number } } }).connection.stream
        .bytesRead ?? 0),
    0,
  );

async function meterSync(
  definition: typeof readingRegister | typeof readingRegisterPlain,
  dryRun = false,
): Promise<unknown> {
  const result = await performSync({
    source,
    target,
    tenantId: 1,
    entities: [definition],
    dryRun,
  });
  const entity = result.entities.reading_register;
  if (entity.status !== 'ok') throw entity.error;
  const { inserted, updated, deleted, skipped, unchanged } = entity;
  return { inserted, updated, deleted, skipped, unchanged };
}

async function naive(): Promise<unknown> {
  const select = `SELECT ${COLUMNS} FROM reading_register WHERE tenant_id = 1`;
  const [fromSource, fromTarget] = await Promise.all([source.query(select), target.query(select)]);
  const keyOf = (row: Record<string, unknown>) => `${row.site_id}/${row.register_no}`;
  const valuesOf = (row: Record<string, unknown>) =>
    JSON.stringify([
      String(row.tenant_id),
      row.name,
      row.unit,
      row.scale,
      row.active,
      (row.updated_at as Date | null)?.toISOString(),
    ]);
  const stored = new Map(fromTarget.rows.map((row) => [keyOf(row), valuesOf(row)]));
  const client = await target.connect();
  let inserted = 0;
  let updated = 0;
  let deleted = 0;
  try {
    await client.query('BEGIN');
    for (const row of fromSource.rows) {
      const key = keyOf(row);
      const existing = stored.get(key);
      stored.delete(key);
      if (existing === valuesOf(row)) continue;
      await client.query(
        `INSERT INTO reading_register (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (site_id, register_no) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, name = EXCLUDED.name,
           unit = EXCLUDED.unit, scale = EXCLUDED.scale, active = EXCLUDED.active, updated_at = EXCLUDED.updated_at`,
        [
          row.site_id,
          row.register_no,
          row.tenant_id,
          row.name,
          row.unit,
          row.scale,
          row.active,
          row.updated_at,
        ],
      );
      if (existing === undefined) inserted++;
      else updated++;
    }
    for (const key of stored.keys()) {
      const [site, register] = key.split('/');
      await client.query('DELETE FROM reading_register WHERE site_id = $1 AND register_no = $2', [
        site,
        register,
      ]);
      deleted++;
    }
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  return { inserted, updated, deleted };
}

async function copyPipe(): Promise<unknown> {
  const from = await source.connect();
  const to = await target.connect();
  try {
    await to.query('BEGIN');
    const out = from.query(
      copyTo(`COPY (SELECT ${COLUMNS} FROM reading_register WHERE tenant_id = 1) TO STDOUT`),
    ) as Readable;
    const into = to.query(copyFrom(`COPY reading_register (${COLUMNS}) FROM STDIN`)) as Writable & {
      rowCount: number;
    };
    await pipeline(out, into);
    await to.query('COMMIT');
    return { inserted: into.rowCount };
  } finally {
    from.release();
    to.release();
  }
}

/**
 * The same 64-bit row hash meter-sync computes, over the whole tenant, once. `hash-scan` runs it
 * as meter-sync runs its own queries (one process, no parallel workers); `hash-scan-parallel`
 * with the server's defaults.
 */
async function hashScan(parallel: boolean): Promise<unknown> {
  const classes: Record<string, TypeClass> = {
    site_id: 'integer',
    register_no: 'integer',
    tenant_id: 'integer',
    name: 'text',
    unit: 'text',
    scale: 'numeric',
    active: 'bool',
    updated_at: 'timestamptz',
  };
  const values = Object.entries(classes).map(([column, cls]) => ({ value: `"${column}"`, cls }));
  const client = await source.connect();
  try {
    await client.query('BEGIN');
    if (!parallel)
      await client.query("SELECT set_config('max_parallel_workers_per_gather', '0', true)");
    const { rows } = await client.query(
      `SELECT count(*)::int AS rows, sum(${combinedHash(values, 100)})::text AS hash_sum
       FROM reading_register WHERE tenant_id = 1`,
    );
    await client.query('COMMIT');
    return rows[0];
  } finally {
    client.release();
  }
}

/** One statement over the tenant's rows, in one process, as meter-sync runs its own. */
async function scan(select: string): Promise<unknown> {
  const client = await source.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('max_parallel_workers_per_gather', '0', true)");
    const { rows } = await client.query(select);
    await client.query('COMMIT');
    return rows[0];
  } finally {
    client.release();
  }
}

const tasks: Record<Task, () => Promise<unknown>> = {
  'meter-sync': () => meterSync(readingRegister),
  'meter-sync-zod': () => meterSync(readingRegisterPlain),
  'meter-sync-dry': () => meterSync(readingRegister, true),
  naive,
  'copy-pipe': copyPipe,
  'hash-scan': () => hashScan(false),
  'hash-scan-parallel': () => hashScan(true),
  'text-hash-scan': () =>
    scan(
      'SELECT count(*)::int AS rows, sum(hashtextextended(r::text, 0))::text AS hash_sum FROM reading_register AS r WHERE tenant_id = 1',
    ),
  count: () => scan('SELECT count(*)::int AS rows FROM reading_register WHERE tenant_id = 1'),
};

const started = performance.now();
try {
  const outcome = await tasks[task]();
  const ms = performance.now() - started;
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ ok: true, ms, peakRssMb, sourceBytes: bytesFromSource(), outcome }));
} catch (error) {
  console.log(
    JSON.stringify({ ok: false, error: error instanceof Error ? error.message : String(error) }),
  );
  process.exitCode = 1;
} finally {
  await Promise.all([source.end(), target.end()]);
}
