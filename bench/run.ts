/**
 * npm run bench [-- --sizes 100000,1000000] [--runs 3] [--no-naive] [--no-comparator] [--log-statements]
 *
 * Starts its own PostgreSQL with a remote and a local database, generates a register-like table
 * per size, and for each scenario (initial sync, no change, 1% and 10% changed) runs meter-sync
 * and the baselines on identical copies of the data: naive (full fetch, in-memory diff,
 * row-by-row upsert), the COPY pipe (initial sync's transfer limit), one full-table hash scan of
 * the source and one count(*) (the floors of a run that looks at every row), and pg_comparator
 * -S -D when it is installed. `meter-sync` compares every row (a run without a watermark);
 * `meter-sync-incremental` first syncs the unchanged source, then the scenario's changes are made
 * on that same source and the timed run reads only what changed. Each tool runs in a process of
 * its own; every database is cloned fresh from a template for every run. The source server's own
 * execution time of each run is taken from pg_stat_statements. Each measurement is taken
 * `--runs` times (3 by default), each on fresh clones, and the run with the median time is
 * reported (the others' times are kept in the JSON): one run varies by 10–30% on a small
 * machine, which a ratio of two single runs doubles.
 * Prints a table and writes bench/results/<date>.json (and, with --log-statements, the server's
 * log with every statement's duration, bench/results/server.log).
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startPostgres } from '../scripts/postgres.js';
import { change, generate, sourceDdl, targetDdl } from './data.js';
import { withPool } from './pool.js';

const run = promisify(execFile);

const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(`--${name}`);
  return index === -1 ? undefined : args[index + 1];
};
const sizes = (option('sizes') ?? '100000,1000000').split(',').map(Number);
const runs = Math.max(1, Number(option('runs') ?? 3));
const withNaive = !args.includes('--no-naive');
const comparatorBinary = '/usr/bin/pg_comparator';
const withComparator = !args.includes('--no-comparator') && existsSync(comparatorBinary);

type Tool =
  | 'meter-sync'
  | 'meter-sync-incremental'
  | 'meter-sync-zod'
  | 'meter-sync-dry'
  | 'naive'
  | 'copy-pipe'
  | 'hash-scan'
  | 'hash-scan-parallel'
  | 'text-hash-scan'
  | 'count'
  | 'pg_comparator';
type Scenario = 'initial' | 'no change' | '1% changed' | '10% changed';

interface Measurement {
  size: number;
  scenario: Scenario;
  tool: Tool;
  ms: number;
  rowsPerSecond: number;
  peakRssMb: number | null;
  sourceBytes: number | null;
  /** Execution time on the source server (pg_stat_statements), in ms. */
  sourceMs: number | null;
  targetWrites: { inserted: number; updated: number; deleted: number } | null;
  outcome?: unknown;
  note?: string;
  /** Every run's time, in ms, in the order taken: the reported one is their median. */
  samplesMs?: number[];
}

const logStatements = args.includes('--log-statements');
const server = await startPostgres({
  settings: {
    shared_buffers: '512MB',
    work_mem: '64MB',
    maintenance_work_mem: '256MB',
    max_wal_size: '8GB',
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.track': 'all',
    ...(logStatements ? { log_min_duration_statement: 0 } : {}),
  },
});
const admin = new pg.Pool({ connectionString: server.url(), max: 1 });
const postgres = `PostgreSQL ${(await admin.query('SHOW server_version')).rows[0].server_version}`;
await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
const results: Measurement[] = [];
let clones = 0;

async function createDatabase(name: string, template?: string) {
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(
    `CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}" STRATEGY FILE_COPY` : ''}`,
  );
}

const withDatabase = <T>(name: string, work: (pool: pg.Pool) => Promise<T>) =>
  withPool(server.url(name), work);

async function targetWrites(database: string) {
  return withDatabase(database, async (pool) => {
    await pool.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await pool.query(
      "SELECT n_tup_ins::int AS inserted, n_tup_upd::int AS updated, n_tup_del::int AS deleted FROM pg_stat_user_tables WHERE relname = 'reading_register'",
    );
    return rows[0] as { inserted: number; updated: number; deleted: number };
  });
}

/**
 * Source-side execution time since the last reset, of statements run in `database`: top-level
 * statements only, since with track = all the query inside a COPY or a cursor counts again.
 */
async function sourceExecutionMs(database: string): Promise<number> {
  const { rows } = await admin.query(
    'SELECT coalesce(sum(s.total_exec_time), 0)::float8 AS ms FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid WHERE d.datname = $1 AND s.toplevel',
    [database],
  );
  return Number(rows[0].ms);
}

function worker(
  tool: Exclude<Tool, 'pg_comparator' | 'meter-sync-incremental'>,
  source: string,
  target: string,
) {
  return new Promise<{
    ok: boolean;
    ms: number;
    peakRssMb: number;
    sourceBytes: number;
    outcome: unknown;
    error?: string;
  }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join('bench', 'worker.ts'), tool, server.url(source), server.url(target)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('close', () => {
      const line = output.trim().split('\n').at(-1) ?? '{}';
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`${tool} printed no result: ${output}`));
      }
    });
  });
}

async function comparator(source: string, target: string) {
  const table = (database: string) =>
    `pgsql://postgres@${server.host}:${server.port}/${database}/public.reading_register?site_id,register_no:tenant_id,name,unit,scale,active,updated_at`;
  const started = performance.now();
  await run(
    comparatorBinary,
    ['-S', '-D', '--max-ratio=1.0', '--where=tenant_id = 1', table(source), table(target)],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return performance.now() - started;
}

/** Runs one tool on fresh clones of the scenario's databases and records the measurement. */
/** `runs` measurements of one tool in one scenario; the one of median time is kept. */
async function measure(...args: Parameters<typeof measureOnce>) {
  const taken: Measurement[] = [];
  for (let i = 0; i < runs; i++) taken.push(await measureOnce(...args));
  const median = [...taken].sort((a, b) => a.ms - b.ms)[Math.floor((taken.length - 1) / 2)];
  results.push({ ...(median as Measurement), samplesMs: taken.map((m) => m.ms) });
  console.error(
    `  ${args[1].padEnd(12)} ${args[2].padEnd(14)} ${((median as Measurement).ms / 1000).toFixed(2).padStart(7)} s  (${taken.map((m) => (m.ms / 1000).toFixed(2)).join(', ')})`,
  );
}

async function measureOnce(
  size: number,
  scenario: Scenario,
  tool: Tool,
  sourceTemplate: string,
  targetTemplate: string,
  rows: number,
  /** For an incremental run: the changes made on the source after the first sync. */
  changes?: string,
): Promise<Measurement> {
  const source = `run_source_${++clones}`;
  const target = `run_target_${clones}`;
  await createDatabase(source, sourceTemplate);
  await createDatabase(target, targetTemplate);
  if (tool === 'meter-sync-incremental') {
    // A watermark is taken on this very source (a clone is another database), then it changes.
    const primed = await worker('meter-sync', source, target);
    if (!primed.ok) throw new Error(`meter-sync failed priming "${scenario}": ${primed.error}`);
    await withDatabase(source, async (pool) => {
      if (changes) await pool.query(changes);
      await pool.query('VACUUM ANALYZE reading_register');
    });
  }
  if (tool === 'pg_comparator') {
    for (const database of [source, target])
      await withDatabase(database, (pool) => pool.query('CREATE EXTENSION IF NOT EXISTS pgcmp'));
  }
  const before = await targetWrites(target);
  await admin.query('SELECT pg_stat_statements_reset()');
  let measurement: Measurement;
  if (tool === 'pg_comparator') {
    const ms = await comparator(source, target);
    measurement = {
      size,
      scenario,
      tool,
      ms,
      rowsPerSecond: rows / (ms / 1000),
      peakRssMb: null,
      sourceBytes: null,
      sourceMs: await sourceExecutionMs(source),
      targetWrites: null,
    };
  } else {
    const result = await worker(
      tool === 'meter-sync-incremental' ? 'meter-sync' : tool,
      source,
      target,
    );
    if (!result.ok)
      throw new Error(`${tool} failed in "${scenario}" at ${size} rows: ${result.error}`);
    measurement = {
      size,
      scenario,
      tool,
      ms: result.ms,
      rowsPerSecond: rows / (result.ms / 1000),
      peakRssMb: result.peakRssMb,
      sourceBytes: result.sourceBytes,
      sourceMs: await sourceExecutionMs(source),
      targetWrites: null,
      outcome: result.outcome,
    };
  }
  const after = await targetWrites(target);
  measurement.targetWrites = {
    inserted: after.inserted - before.inserted,
    updated: after.updated - before.updated,
    deleted: after.deleted - before.deleted,
  };
  await admin.query(`DROP DATABASE "${source}" WITH (FORCE)`);
  await admin.query(`DROP DATABASE "${target}" WITH (FORCE)`);
  return measurement;
}

async function tableBytes(database: string) {
  return withDatabase(database, async (pool) => {
    const { rows } = await pool.query("SELECT pg_table_size('reading_register')::int8 AS bytes");
    return Number(rows[0].bytes);
  });
}

const tableSizes: Record<number, number> = {};
const startedAll = performance.now();
try {
  for (const size of sizes) {
    console.error(`${size} rows:`);
    // Templates: the source as generated, the source after 1% and 10% changes, an empty target
    // and a target holding the generated data (as after an earlier sync).
    await createDatabase('source_base');
    await withDatabase('source_base', async (pool) => {
      await pool.query(sourceDdl);
      await pool.query(generate(size));
      // As autovacuum leaves a production table: hint bits set, statistics fresh.
      await pool.query('VACUUM ANALYZE reading_register');
    });
    tableSizes[size] = await tableBytes('source_base');
    await createDatabase('target_empty');
    await withDatabase('target_empty', (pool) => pool.query(targetDdl));
    await createDatabase('target_synced', 'target_empty');
    const changes: Partial<Record<Scenario, string>> = {};
    for (const [name, scenario, fraction] of [
      ['source_1pct', '1% changed', 0.01],
      ['source_10pct', '10% changed', 0.1],
    ] as const) {
      changes[scenario] = change(size, fraction).sql;
      await createDatabase(name, 'source_base');
      await withDatabase(name, async (pool) => {
        await pool.query(changes[scenario] as string);
        await pool.query('VACUUM ANALYZE reading_register');
      });
    }
    // Fill the synced target with the generated data through the COPY pipe, then keep it as a template.
    await worker('copy-pipe', 'source_base', 'target_synced');
    await withDatabase('target_synced', (pool) => pool.query('VACUUM ANALYZE reading_register'));

    const plan: [Scenario, string, string, number][] = [
      ['initial', 'source_base', 'target_empty', size],
      ['no change', 'source_base', 'target_synced', size],
      ['1% changed', 'source_1pct', 'target_synced', size],
      ['10% changed', 'source_10pct', 'target_synced', size],
    ];
    for (const [scenario, source, target, rows] of plan) {
      await measure(size, scenario, 'meter-sync', source, target, rows);
      if (scenario !== 'initial')
        await measure(
          size,
          scenario,
          'meter-sync-incremental',
          'source_base',
          target,
          rows,
          changes[scenario],
        );
      // Plain zod against col schemas where rows are compared, and a dry run of every row.
      if (scenario !== '10% changed')
        await measure(size, scenario, 'meter-sync-zod', source, target, rows);
      if (scenario === 'initial' || scenario === '1% changed')
        await measure(size, scenario, 'meter-sync-dry', source, target, rows);
      if (scenario === 'initial') await measure(size, scenario, 'copy-pipe', source, target, rows);
      if (scenario === 'no change') {
        await measure(size, scenario, 'hash-scan', source, target, rows);
        await measure(size, scenario, 'hash-scan-parallel', source, target, rows);
        await measure(size, scenario, 'text-hash-scan', source, target, rows);
        await measure(size, scenario, 'count', source, target, rows);
      }
      // Row-by-row inserts of a whole large table would dominate the run; the changed scenarios
      // show the naive design's cost well enough.
      if (withNaive && (scenario !== 'initial' || size <= 100_000))
        await measure(size, scenario, 'naive', source, target, rows);
      if (withComparator && scenario !== 'initial')
        await measure(size, scenario, 'pg_comparator', source, target, rows);
    }
  }
} finally {
  await admin.end();
  if (logStatements) {
    mkdirSync('bench/results', { recursive: true });
    copyFileSync(join(server.dataDirectory, '..', 'server.log'), 'bench/results/server.log');
  }
  await server.stop();
}

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGb: Math.round(totalmem() / 1024 ** 3),
  node: process.version,
  postgres,
  date: new Date().toISOString(),
};

printTable();
mkdirSync('bench/results', { recursive: true });
const file = join('bench/results', `${machine.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ machine, tableSizes, results }, null, 2)}\n`);
console.log(`\n${file}; total ${((performance.now() - startedAll) / 1000).toFixed(0)} s`);

function printTable() {
  const find = (size: number, scenario: Scenario, tool: Tool) =>
    results.find((r) => r.size === size && r.scenario === scenario && r.tool === tool);
  const ratio = (a?: Measurement, b?: Measurement) =>
    a && b && Number.isFinite(a.ms / b.ms) ? `${(a.ms / b.ms).toFixed(2)}×` : '–';
  const percent = (part: number | null | undefined, whole: number | undefined) =>
    part === null || part === undefined || !whole ? '–' : `${((100 * part) / whole).toFixed(3)}%`;
  const lines = [
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGb} GiB; Node ${machine.node}; ${machine.postgres}`,
    '',
    '| rows | scenario | tool | time (range) | rows/s | peak RSS | bytes from source | source server time | target ins / upd / del |',
    '| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const writes = r.targetWrites
      ? `${r.targetWrites.inserted} / ${r.targetWrites.updated} / ${r.targetWrites.deleted}`
      : '–';
    const bytes =
      r.sourceBytes === null
        ? '–'
        : `${(r.sourceBytes / 1024 ** 2).toFixed(2)} MB (${((100 * r.sourceBytes) / (tableSizes[r.size] ?? 1)).toFixed(2)}%)`;
    const sourceTime = r.sourceMs === null ? '–' : `${(r.sourceMs / 1000).toFixed(3)} s`;
    const spread =
      r.samplesMs && r.samplesMs.length > 1
        ? ` (${(Math.min(...r.samplesMs) / 1000).toFixed(2)}–${(Math.max(...r.samplesMs) / 1000).toFixed(2)})`
        : '';
    lines.push(
      `| ${r.size.toLocaleString('en')} | ${r.scenario} | ${r.tool} | ${(r.ms / 1000).toFixed(2)} s${spread} | ${Math.round(r.rowsPerSecond).toLocaleString('en')} | ${r.peakRssMb === null ? '–' : `${r.peakRssMb.toFixed(0)} MB`} | ${bytes} | ${sourceTime} | ${writes} |`,
    );
  }
  lines.push('', '| rows | ratio | value | target |', '| ---: | --- | ---: | --- |');
  for (const size of sizes) {
    const ours = (scenario: Scenario) => find(size, scenario, 'meter-sync');
    lines.push(
      `| ${size.toLocaleString('en')} | initial sync / COPY pipe | ${ratio(ours('initial'), find(size, 'initial', 'copy-pipe'))} | ≤ 1.5× |`,
    );
    lines.push(
      `| ${size.toLocaleString('en')} | no change / one source hash scan (one process, as the sync runs it) | ${ratio(ours('no change'), find(size, 'no change', 'hash-scan'))} | ≤ 2× |`,
      `| ${size.toLocaleString('en')} | no change / one source hash scan (server's parallel workers) | ${ratio(ours('no change'), find(size, 'no change', 'hash-scan-parallel'))} | |`,
    );
    const incremental = (scenario: Scenario) => find(size, scenario, 'meter-sync-incremental');
    lines.push(
      `| ${size.toLocaleString('en')} | no change, incremental / one source hash scan | ${ratio(incremental('no change'), find(size, 'no change', 'hash-scan'))} | ≤ 0.5× |`,
      `| ${size.toLocaleString('en')} | no change, incremental / one source text hash scan | ${ratio(incremental('no change'), find(size, 'no change', 'text-hash-scan'))} | ≤ 0.5× |`,
      `| ${size.toLocaleString('en')} | no change, incremental / count(*) | ${ratio(incremental('no change'), find(size, 'no change', 'count'))} | ≤ 2× |`,
      `| ${size.toLocaleString('en')} | no change, incremental: bytes from source / table | ${percent(incremental('no change')?.sourceBytes, tableSizes[size])} | < 0.1% |`,
    );
    for (const scenario of ['1% changed', '10% changed'] as const) {
      lines.push(
        `| ${size.toLocaleString('en')} | ${scenario}: pg_comparator / incremental | ${ratio(find(size, scenario, 'pg_comparator'), incremental(scenario))} | ${scenario === '1% changed' ? '≥ 10×' : ''} |`,
        `| ${size.toLocaleString('en')} | ${scenario}: naive / incremental | ${ratio(find(size, scenario, 'naive'), incremental(scenario))} | ${scenario === '1% changed' ? '≥ 10×' : ''} |`,
        `| ${size.toLocaleString('en')} | ${scenario}: incremental / full comparison | ${ratio(incremental(scenario), ours(scenario))} | ${scenario === '10% changed' ? '≤ 1×' : ''} |`,
      );
    }
    for (const scenario of ['no change', '1% changed', '10% changed'] as const) {
      lines.push(
        `| ${size.toLocaleString('en')} | ${scenario}: source server time, incremental / full comparison | ${ratio(
          { ms: incremental(scenario)?.sourceMs ?? Number.NaN } as Measurement,
          { ms: ours(scenario)?.sourceMs ?? Number.NaN } as Measurement,
        )} | |`,
      );
    }
    for (const scenario of ['initial', 'no change', '1% changed'] as const) {
      lines.push(
        `| ${size.toLocaleString('en')} | ${scenario}: plain zod / col schemas | ${ratio(find(size, scenario, 'meter-sync-zod'), ours(scenario))} | ${scenario === '1% changed' ? '≤ 1.2×' : ''} |`,
      );
    }
    for (const scenario of ['1% changed', '10% changed'] as const) {
      lines.push(
        `| ${size.toLocaleString('en')} | ${scenario}: pg_comparator / meter-sync | ${ratio(find(size, scenario, 'pg_comparator'), ours(scenario))} | ${scenario === '1% changed' ? '≥ 3×' : ''} |`,
      );
      lines.push(
        `| ${size.toLocaleString('en')} | ${scenario}: naive / meter-sync | ${ratio(find(size, scenario, 'naive'), ours(scenario))} | ${scenario === '1% changed' ? '≥ 5×' : ''} |`,
      );
    }
  }
  if (!withComparator)
    lines.push(
      '',
      'pg_comparator: not run (binary or pgcmp extension not installed: apt install postgresql-comparator).',
    );
  console.log(lines.join('\n'));
}
