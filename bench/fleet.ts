/**
 * npm run bench:fleet [-- --agents 20] [--rounds 5] [--registers 2000] [--modes incremental,full,naive]
 *                      [--mix 0.1] [--tenants N] [--tenant-indexes] [--no-jit] [--pgbouncer]
 *
 * What a fleet of sites costs the Client System. Starts its own PostgreSQL with one source
 * database (the Client System's schema, `src/sample/client-system-schema.ts`) holding one tenant
 * per agent (or `--tenants`), each with five devices, five meters of three elements and
 * `--registers` registers, and the shared device_register table linking each tenant's registers
 * to its devices (tenants × registers rows). Each site has a sync database of its own (made with
 * `syncSchemaSql`) on the same server.
 *
 * `--tenants` (default: as many as agents) puts more tenants in the source than agents sync, to
 * see how a run's cost grows with the source's size; `--tenant-indexes` adds indexes on the
 * tenant columns and on device_register (register_id), which the Client System schema lacks;
 * `--no-jit` starts the server with `jit = off`; `--pgbouncer` puts PgBouncer in transaction
 * pooling between the agents and the source (below).
 *
 * `--agents` agent processes (bench/fleet-agent.ts), one tenant each, sync all at once, phase by
 * phase: the first sync, then `--rounds` rounds of a sync with nothing changed and a sync after 1%
 * of each tenant's registers changed on the source (updates, a few inserts and deletes, and some
 * device_register rows moved, added and removed). The fleet is measured three ways, each on a
 * fresh copy of the source and empty sync databases: `incremental` (performSync, built-in
 * entities), `full` (performSync with `incremental: false`) and `naive` (every row of the tenant's
 * tables and the whole device_register table read, diffed in memory, written row by row).
 *
 * Each agent process first syncs once, unmeasured, into a scratch copy, so that no mode's figures
 * carry the process's warm-up.
 *
 * Per agent run: CPU time of its source backends (from /proc, the server being local), bytes read
 * on its source sockets, rows and execution time on the source (pg_stat_statements, each agent
 * connecting to the source as a role of its own with SELECT privilege only), and wall time.
 * Prints the machine, a table per phase and mode, the totals per phase, and a capacity projection
 * for 1,000 and 10,000 sites syncing every 5 minutes computed from the measured figures; writes
 * everything to bench/results/fleet-<date>.json.
 *
 * With `--pgbouncer` the agents reach the source through a PgBouncer of their own
 * (`scripts/pgbouncer.ts`, transaction pooling); the sync databases are still reached directly.
 * Each agent keeps its role, so PgBouncer keeps a pool per site role (of at most
 * `SERVER_CONNECTIONS_PER_ROLE` server connections, never closed for idleness) and every server
 * backend belongs to one agent. Those backends outlive a run, so the benchmark reads the CPU of
 * each role's server backends (found in pg_stat_activity) before the agents start and again when
 * an agent reports: a run's CPU is the difference, and a backend started during the run counts
 * whole, start-up included. Nothing else connects as a site role. Bytes are then those between
 * the agent and PgBouncer; pg_stat_statements still sees each site's role.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findPgBouncer, type PgBouncer, startPgBouncer } from '../scripts/pgbouncer.js';
import { startPostgres } from '../scripts/postgres.js';
import { syncSchemaSql } from '../src/index.js';
import { clientSystemSchemaSql } from '../src/sample/client-system-schema.js';
import { mulberry32 } from '../test/faults/support/figures.js';
import type { BackendCpu, FleetMode, RunReport, RunRequest } from './fleet-agent.js';
import { withPool } from './pool.js';
import { type ProcReading, readProc } from './proc.js';

const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(`--${name}`);
  return index === -1 ? undefined : args[index + 1];
};
const wholeNumber = (name: string, fallback: number, least = 1) => {
  const value = Number(option(name) ?? fallback);
  if (!Number.isInteger(value) || value < least)
    throw new Error(`--${name} must be a whole number ≥ ${least}`);
  return value;
};
const agentCount = wholeNumber('agents', 20);
const rounds = wholeNumber('rounds', 5);
const registersPerTenant = wholeNumber('registers', 2000, 100);
const tenantCount = wholeNumber('tenants', agentCount, agentCount);
const tenantIndexes = args.includes('--tenant-indexes');
const jit = !args.includes('--no-jit');
const modes = (option('modes') ?? 'incremental,full,naive').split(',') as FleetMode[];
for (const mode of modes)
  if (!['incremental', 'full', 'naive'].includes(mode))
    throw new Error(`--modes: unknown mode ${mode} (incremental, full, naive)`);
/** Share of runs in the steady state that find 1% of the registers changed. */
const changedShare = Number(option('mix') ?? 0.1);
if (!(changedShare >= 0 && changedShare <= 1)) throw new Error('--mix must be between 0 and 1');
const pgBouncerProgram = args.includes('--pgbouncer') ? findPgBouncer() : undefined;
if (args.includes('--pgbouncer') && !pgBouncerProgram)
  throw new Error('--pgbouncer: no pgbouncer program (Debian: apt-get install pgbouncer)');

const DEVICES_PER_TENANT = 5;
const METERS_PER_TENANT = 5;
const ELEMENTS_PER_METER = 3;
const INTERVAL_SECONDS = 300;
const FLEET_SIZES = [1_000, 10_000];
/**
 * PgBouncer's `default_pool_size`: server connections per site role (its pool is per database and
 * user). A run uses one source connection at a time; the second spares a run a wait.
 */
const SERVER_CONNECTIONS_PER_ROLE = 2;

/** Each round changes this share of a tenant's registers. */
const CHANGED = Math.max(1, Math.round(registersPerTenant * 0.01));
const INSERTS = Math.max(1, Math.round(CHANGED / 10));
const DELETES = INSERTS;
const UPDATES = Math.max(0, CHANGED - INSERTS - DELETES);
/** device_register rows moved to another device of the tenant, besides those of inserts and deletes. */
const MOVES = INSERTS;

type Phase = 'first sync' | 'no change' | '1% changed';
const PHASES: readonly Phase[] = ['first sync', 'no change', '1% changed'];

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

const server = await startPostgres({
  settings: {
    shared_buffers: '256MB',
    max_connections: Math.max(200, agentCount * 6 + 20),
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.track': 'all',
    'pg_stat_statements.max': 20000,
    ...(jit ? {} : { jit: 'off' }),
  },
});
const admin = new pg.Pool({ connectionString: server.url(), max: 2 });
const postgres = `PostgreSQL ${(await admin.query('SHOW server_version')).rows[0].server_version}`;
const jitSetting = (await admin.query("SELECT current_setting('jit') AS jit")).rows[0]
  .jit as string;
await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGb: Math.round(totalmem() / 1024 ** 3),
  loadAverageAtStart: loadavg().map((n) => Number(n.toFixed(2))),
  node: process.version,
  postgres,
  jit: jitSetting,
  clockTicks,
  date: new Date().toISOString(),
};
const roleOf = (tenant: number) => `site_${tenant}`;
const tenants = Array.from({ length: agentCount }, (_, i) => i + 1);
const sourceDatabases = ['source_warmup', ...modes.map((mode) => `source_${mode}`)];

/** How the agents reach the source: directly, or through PgBouncer (started with the run). */
const pgBouncerVersion = pgBouncerProgram
  ? (execFileSync(pgBouncerProgram, ['--version']).toString().split('\n')[0]?.trim() ?? 'PgBouncer')
  : undefined;
let bouncer: PgBouncer | undefined;
const sourceConnection = pgBouncerVersion
  ? `through ${pgBouncerVersion} in transaction pooling (a pool per site role, at most ${SERVER_CONNECTIONS_PER_ROLE} server connections each)`
  : 'connecting directly';

interface RunRecord {
  mode: FleetMode;
  phase: Phase;
  round: number;
  tenant: number;
  ok: boolean;
  error?: string;
  ms: number;
  /**
   * utime + stime of the run's source backends, in ms. Through PgBouncer: of its role's server
   * backends between the run's start and end.
   */
  cpuMs: number;
  /** On-CPU time of the run's source backends (schedstat), in ms; null where unavailable. */
  cpuSchedMs: number | null;
  backends: number;
  unreadBackends: number;
  /** Through PgBouncer: server backends started during the run (their start-up is in cpuMs). */
  startedBackends?: number;
  sourceBytes: number;
  /** pg_stat_statements of the agent's source role, top-level statements. */
  execMs: number;
  rows: number;
  calls: number;
  /** The same, statements nested in others (a cursor's query), which top-level ones include. */
  nestedExecMs: number;
  nestedRows: number;
  rowsReceived?: number;
  entities: RunReport['entities'];
}

interface PhaseRecord {
  mode: FleetMode;
  phase: Phase;
  round: number;
  wallMs: number;
  /** From the first agent's start to the last one's end. */
  spanMs: number;
  evictedStatements: number;
  /** The source's costliest statements in the phase, all agents together. */
  topStatements: { toplevel: boolean; calls: number; ms: number; rows: number; query: string }[];
}

const runs: RunRecord[] = [];
const phases: PhaseRecord[] = [];
const verification: Record<string, { ok: boolean; mismatches: string[] }> = {};

// ---------------------------------------------------------------- the agents' processes

class Agent {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<
    number,
    { resolve: (report: RunReport) => void; reject: (error: Error) => void }
  >();
  readonly ready: Promise<void>;

  constructor(readonly tenant: number) {
    this.child = fork(join('bench', 'fleet-agent.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('exit', (code) => {
        const error = new Error(`the agent of site ${tenant} exited (${code})`);
        reject(error);
        for (const waiting of this.waiting.values()) waiting.reject(error);
        this.waiting.clear();
      });
      this.child.on('message', (message: RunReport | 'ready') => {
        if (message === 'ready') return resolve();
        this.waiting.get(message.run)?.resolve(message);
        this.waiting.delete(message.run);
      });
    });
  }

  run(request: RunRequest): Promise<RunReport> {
    return new Promise((resolve, reject) => {
      this.waiting.set(request.run, { resolve, reject });
      this.child.send(request);
    });
  }

  stop(): Promise<void> {
    if (this.child.exitCode !== null || !this.child.connected) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.send('exit');
    });
  }
}

// ---------------------------------------------------------------- databases

const withDatabase = <T>(name: string, work: (pool: pg.Pool) => Promise<T>) =>
  withPool(server.url(name), work);

async function createDatabase(name: string, template?: string) {
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(
    `CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}" STRATEGY FILE_COPY` : ''}`,
  );
}

const seedSql = (n: number, registers: number) => {
  const devices = DEVICES_PER_TENANT;
  const meters = METERS_PER_TENANT;
  return `
INSERT INTO device (device_id, manufacturer, model_number, description, type, active)
SELECT d, (ARRAY['Schneider Electric', 'Siemens', 'ABB', 'Janitza', 'Carlo Gavazzi'])[1 + (d - 1) % 5],
       'M' || (4000 + d), 'Power meter ' || d, CASE WHEN d % 3 = 0 THEN 'analyser' ELSE 'power_meter' END, true
  FROM generate_series(1, ${n * devices}) AS d;
INSERT INTO meter (meter_id, tenant_id, name, device_id, ip, port, active)
SELECT (t - 1) * ${meters} + m, t, 'Main board ' || m, (t - 1) * ${devices} + 1 + (m - 1) % ${devices},
       '10.' || (t / 256) || '.' || (t % 256) || '.' || m, 502, true
  FROM generate_series(1, ${n}) AS t, generate_series(1, ${meters}) AS m;
INSERT INTO meter_element (meter_element_id, meter_id, tenant_id, element, name)
SELECT ((t - 1) * ${meters} + m - 1) * ${ELEMENTS_PER_METER} + e, (t - 1) * ${meters} + m, t, chr(64 + e), 'Phase ' || chr(64 + e)
  FROM generate_series(1, ${n}) AS t, generate_series(1, ${meters}) AS m, generate_series(1, ${ELEMENTS_PER_METER}) AS e;
INSERT INTO register (register_id, tenant_id, name, register, unit, field_name)
SELECT (t - 1) * ${registers} + k, t,
       (ARRAY['Active energy import', 'Active power total', 'Voltage L1-N', 'Voltage L2-N'])[1 + (k - 1) % 4] || ' ' || k,
       2700 + 2 * k, (ARRAY['kWh', 'kW', 'V', 'V'])[1 + (k - 1) % 4],
       (ARRAY['active_energy', 'active_power', 'voltage_l1', 'voltage_l2'])[1 + (k - 1) % 4] || '_' || k
  FROM generate_series(1, ${n}) AS t, generate_series(1, ${registers}) AS k;
INSERT INTO device_register (device_id, register_id)
SELECT (t - 1) * ${devices} + 1 + (k - 1) % ${devices}, (t - 1) * ${registers} + k
  FROM generate_series(1, ${n}) AS t, generate_series(1, ${registers}) AS k;
SELECT setval('device_device_id_seq', ${n * devices}), setval('meter_meter_id_seq', ${n * meters}),
       setval('meter_element_meter_element_id_seq', ${n * meters * ELEMENTS_PER_METER}),
       setval('register_register_id_seq', ${n * registers});`;
};

/** The source's registers per tenant, followed as the rounds change them. */
class ChangeStream {
  private readonly live = new Map<number, number[]>();
  private nextId = tenantCount * registersPerTenant;

  constructor() {
    for (const tenant of tenants)
      this.live.set(
        tenant,
        Array.from(
          { length: registersPerTenant },
          (_, k) => (tenant - 1) * registersPerTenant + k + 1,
        ),
      );
  }

  /** One round's changes to every tenant, as one transaction's statements. */
  next(round: number): string {
    const statements: string[] = [];
    for (const tenant of tenants) {
      const live = this.live.get(tenant) as number[];
      const draw = mulberry32(round * 1_000_003 + tenant);
      // The first picks of a partial shuffle: distinct registers.
      const picks = UPDATES + DELETES + MOVES;
      for (let i = 0; i < picks; i++) {
        const j = i + Math.floor(draw() * (live.length - i));
        [live[i], live[j]] = [live[j] as number, live[i] as number];
      }
      const updated = live.slice(0, UPDATES);
      const deleted = live.slice(UPDATES, UPDATES + DELETES);
      const moved = live.slice(UPDATES + DELETES, picks);
      const firstDevice = (tenant - 1) * DEVICES_PER_TENANT + 1;
      if (updated.length > 0)
        statements.push(
          `UPDATE register SET name = regexp_replace(name, ' rev [0-9]+$', '') || ' rev ${round}' WHERE register_id IN (${updated.join(', ')})`,
        );
      statements.push(
        `DELETE FROM device_register WHERE register_id IN (${deleted.join(', ')})`,
        `DELETE FROM register WHERE register_id IN (${deleted.join(', ')})`,
        `UPDATE device_register SET device_id = ${firstDevice} + (device_id - ${firstDevice} + 1) % ${DEVICES_PER_TENANT} WHERE register_id IN (${moved.join(', ')})`,
      );
      const added = Array.from({ length: INSERTS }, () => ++this.nextId);
      statements.push(
        `INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES ${added
          .map(
            (id) =>
              `(${id}, ${tenant}, 'Reactive energy import ${id}', ${2700 + (id % 5000)}, 'kvarh', 'reactive_energy_${id}')`,
          )
          .join(', ')}`,
        `INSERT INTO device_register (device_id, register_id) VALUES ${added
          .map((id) => `(${firstDevice + (id % DEVICES_PER_TENANT)}, ${id})`)
          .join(', ')}`,
      );
      const gone = new Set(deleted);
      this.live.set(tenant, [...live.filter((id) => !gone.has(id)), ...added]);
    }
    return `BEGIN;\n${statements.join(';\n')};\nCOMMIT;`;
  }
}

/** pg_stat_statements of the source database, per agent role: top-level and nested statements. */
async function statementsByRole(database: string) {
  const { rows } = await admin.query(
    `SELECT r.rolname AS role, s.toplevel,
            sum(s.calls)::float8 AS calls, sum(s.total_exec_time)::float8 AS ms, sum(s.rows)::float8 AS rows
       FROM pg_stat_statements AS s
       JOIN pg_database AS d ON d.oid = s.dbid
       JOIN pg_roles AS r ON r.oid = s.userid
      WHERE d.datname = $1
      GROUP BY r.rolname, s.toplevel`,
    [database],
  );
  const byRole = new Map<
    string,
    { calls: number; ms: number; rows: number; nestedMs: number; nestedRows: number }
  >();
  for (const row of rows) {
    const entry = byRole.get(row.role) ?? { calls: 0, ms: 0, rows: 0, nestedMs: 0, nestedRows: 0 };
    if (row.toplevel) {
      entry.calls += row.calls;
      entry.ms += row.ms;
      entry.rows += row.rows;
    } else {
      entry.nestedMs += row.ms;
      entry.nestedRows += row.rows;
    }
    byRole.set(row.role, entry);
  }
  const { rows: info } = await admin.query(
    'SELECT dealloc::int8 AS dealloc FROM pg_stat_statements_info',
  );
  // The statements that cost the source most, all agents together, for the JSON.
  const { rows: top } = await admin.query(
    `SELECT s.toplevel, sum(s.calls)::float8 AS calls, sum(s.total_exec_time)::float8 AS ms,
            sum(s.rows)::float8 AS rows, q.query
       FROM pg_stat_statements AS s
       JOIN pg_database AS d ON d.oid = s.dbid
      CROSS JOIN LATERAL (SELECT left(regexp_replace(s.query, '\\s+', ' ', 'g'), 300) AS query) AS q
      WHERE d.datname = $1
      GROUP BY s.toplevel, q.query
      ORDER BY ms DESC
      LIMIT 12`,
    [database],
  );
  return { byRole, evicted: Number(info[0]?.dealloc ?? 0), top };
}

let runNumber = 0;

const requestFor = (
  agent: Agent,
  mode: FleetMode,
  sourceDatabase: string,
  targetOf: (tenant: number) => string,
): RunRequest => ({
  run: ++runNumber,
  mode,
  tenantId: agent.tenant,
  sourceUrl: bouncer
    ? bouncer.url(sourceDatabase, roleOf(agent.tenant))
    : server.url(sourceDatabase).replace('postgres@', `${roleOf(agent.tenant)}@`),
  targetUrl: server.url(targetOf(agent.tenant)),
  applicationName: `fleet-${roleOf(agent.tenant)}`,
  ownBackends: bouncer === undefined,
});

/** A role's server backends, by pid and start time (a pid may come again), with their CPU so far. */
type Backends = Map<string, ProcReading>;

/** The source's backends of each role (through PgBouncer: its server connections) and their CPU. */
async function backendsOf(database: string, roles: readonly string[]) {
  const { rows } = await admin.query(
    `SELECT usename AS role, pid, backend_start::text AS started
       FROM pg_stat_activity
      WHERE datname = $1 AND usename = ANY($2) AND backend_type = 'client backend'`,
    [database, roles],
  );
  const byRole = new Map<string, Backends>(roles.map((role) => [role, new Map()]));
  for (const row of rows) {
    const reading = readProc(row.pid);
    if (reading) byRole.get(row.role)?.set(`${row.pid}@${row.started}`, reading);
  }
  return byRole;
}

/**
 * The CPU a role's backends spent between two readings: a backend there at both counts the
 * difference, one that started in between counts whole (start-up included), one that ended in
 * between is unread (its CPU after the first reading is missing).
 */
function cpuBetween(before: Backends, after: Backends): { cpu: BackendCpu; started: number } {
  let ticks = 0;
  let ns: number | null = 0;
  let started = 0;
  for (const [key, end] of after) {
    const start = before.get(key);
    if (!start) started++;
    ticks += end.ticks - (start?.ticks ?? 0);
    ns =
      ns === null || end.ns === null || (start !== undefined && start.ns === null)
        ? null
        : ns + end.ns - (start?.ns ?? 0);
  }
  const gone = [...before.keys()].filter((key) => !after.has(key)).length;
  return { cpu: { ticks, ns, backends: after.size + gone, unread: gone }, started };
}

const NO_CPU: BackendCpu = { ticks: 0, ns: null, backends: 0, unread: 0 };

/** One unmeasured sync per agent, so that no mode's figures carry a process's warm-up. */
async function warmUp(agents: readonly Agent[]) {
  const targetOf = (tenant: number) => `target_warmup_${tenant}`;
  await createDatabase('source_warmup', 'source_template');
  for (const tenant of tenants) await createDatabase(targetOf(tenant), 'target_template');
  const reports = await Promise.all(
    agents.map((agent) => agent.run(requestFor(agent, 'incremental', 'source_warmup', targetOf))),
  );
  const failed = reports.find((r) => !r.ok);
  if (failed) throw new Error(`warm-up sync failed: ${failed.error}`);
  for (const tenant of tenants)
    await admin.query(`DROP DATABASE "${targetOf(tenant)}" WITH (FORCE)`);
  await admin.query('DROP DATABASE source_warmup WITH (FORCE)');
}

async function runPhase(
  agents: readonly Agent[],
  mode: FleetMode,
  phase: Phase,
  round: number,
  sourceDatabase: string,
  targetOf: (tenant: number) => string,
) {
  await admin.query('SELECT pg_stat_statements_reset()');
  // Through PgBouncer, the server backends the agents' roles have before the phase: idle, since
  // nothing else connects as those roles.
  const before = bouncer
    ? await backendsOf(
        sourceDatabase,
        agents.map((agent) => roleOf(agent.tenant)),
      )
    : undefined;
  const started = performance.now();
  const results = await Promise.all(
    agents.map(async (agent) => {
      const report = await agent.run(requestFor(agent, mode, sourceDatabase, targetOf));
      const arrived = performance.now();
      if (!before) return { report, arrived, cpu: report.cpu ?? NO_CPU };
      // The run is over and its role's backends idle again: read them before the next phase.
      const role = roleOf(agent.tenant);
      const after = (await backendsOf(sourceDatabase, [role])).get(role) as Backends;
      const measured = cpuBetween(before.get(role) ?? new Map(), after);
      return { report, arrived, cpu: measured.cpu, startedBackends: measured.started };
    }),
  );
  const wallMs = Math.max(...results.map((r) => r.arrived)) - started;
  const reports = results.map((r) => r.report);
  const statements = await statementsByRole(sourceDatabase);
  for (const [index, { report, cpu, startedBackends }] of results.entries()) {
    const tenant = agents[index]?.tenant as number;
    const s = statements.byRole.get(roleOf(tenant));
    runs.push({
      mode,
      phase,
      round,
      tenant,
      ok: report.ok,
      ...(report.error ? { error: report.error } : {}),
      ms: report.ms,
      cpuMs: (cpu.ticks * 1000) / clockTicks,
      cpuSchedMs: cpu.ns === null ? null : cpu.ns / 1e6,
      backends: cpu.backends,
      unreadBackends: cpu.unread,
      ...(startedBackends === undefined ? {} : { startedBackends }),
      sourceBytes: report.sourceBytes,
      execMs: s?.ms ?? 0,
      rows: s?.rows ?? 0,
      calls: s?.calls ?? 0,
      nestedExecMs: s?.nestedMs ?? 0,
      nestedRows: s?.nestedRows ?? 0,
      ...(report.rowsReceived === undefined ? {} : { rowsReceived: report.rowsReceived }),
      entities: report.entities,
    });
    if (!report.ok) console.error(`  ${mode} ${phase}: site ${tenant} failed: ${report.error}`);
  }
  phases.push({
    mode,
    phase,
    round,
    wallMs,
    spanMs:
      Math.max(...reports.map((r) => r.finishedAt)) - Math.min(...reports.map((r) => r.startedAt)),
    evictedStatements: statements.evicted,
    topStatements: statements.top,
  });
  const failed = reports.filter((r) => !r.ok).length;
  console.error(
    `  ${mode.padEnd(11)} ${phase.padEnd(10)} round ${round}: ${(wallMs / 1000).toFixed(2)} s${failed ? `, ${failed} failed` : ''}`,
  );
}

/** Each site's sync database against its tenant's rows on the source. */
async function verify(sourceDatabase: string, targetOf: (tenant: number) => string) {
  const digests = {
    register: (tenantParam: string, _source: boolean) =>
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(concat_ws('|', register_id, tenant_id, name, register, unit, field_name), E'\\n' ORDER BY register_id), '')) AS digest
         FROM register WHERE tenant_id = ${tenantParam}`,
    device_register: (tenantParam: string, _source: boolean) =>
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(dr.device_id || '/' || dr.register_id, ',' ORDER BY dr.register_id, dr.device_id), '')) AS digest
         FROM device_register AS dr JOIN register AS r ON r.register_id = dr.register_id WHERE r.tenant_id = ${tenantParam}`,
    meter: (tenantParam: string, source: boolean) =>
      source
        ? `SELECT count(*)::int AS n, md5(coalesce(string_agg(concat_ws('|', m.meter_id, e.meter_element_id, m.name || '-' || e.name, e.element, m.device_id), ',' ORDER BY m.meter_id, e.meter_element_id), '')) AS digest
             FROM meter AS m JOIN meter_element AS e ON e.meter_id = m.meter_id WHERE m.tenant_id = ${tenantParam}`
        : `SELECT count(*)::int AS n, md5(coalesce(string_agg(concat_ws('|', meter_id, meter_element_id, name, element, device_id), ',' ORDER BY meter_id, meter_element_id), '')) AS digest
             FROM meter WHERE tenant_id = ${tenantParam}`,
  };
  const mismatches: string[] = [];
  await withDatabase(sourceDatabase, async (source) => {
    for (const tenant of tenants) {
      await withDatabase(targetOf(tenant), async (target) => {
        for (const [table, sql] of Object.entries(digests)) {
          const [a, b] = await Promise.all([
            source.query(sql('$1', true), [tenant]),
            target.query(sql('$1', false), [tenant]),
          ]);
          if (a.rows[0].digest !== b.rows[0].digest)
            mismatches.push(
              `site ${tenant} ${table}: source ${a.rows[0].n} rows, sync database ${b.rows[0].n} rows, contents differ`,
            );
        }
      });
    }
  });
  return mismatches;
}

// ---------------------------------------------------------------- the run

const startedAll = performance.now();
const agents: Agent[] = [];
try {
  console.error(
    `Source: ${tenantCount} tenants × ${registersPerTenant} registers, device_register ${tenantCount * registersPerTenant} rows; ${agentCount} agents, ${rounds} rounds; agents ${sourceConnection}`,
  );
  for (const tenant of tenants) {
    await admin.query(`DROP ROLE IF EXISTS ${roleOf(tenant)}`);
    await admin.query(`CREATE ROLE ${roleOf(tenant)} LOGIN`);
  }
  if (pgBouncerProgram)
    bouncer = await startPgBouncer({
      upstream: server,
      poolMode: 'transaction',
      databases: sourceDatabases,
      users: tenants.map(roleOf),
      settings: {
        default_pool_size: SERVER_CONNECTIONS_PER_ROLE,
        // Up to 3 connections per agent's source pool.
        max_client_conn: Math.max(100, agentCount * 3 + 20),
        // Server connections stay for the whole benchmark: a backend that ended between a run's
        // start and end would take its CPU with it.
        server_idle_timeout: 0,
        server_lifetime: 86_400,
      },
    });
  await createDatabase('source_template');
  await withDatabase('source_template', async (pool) => {
    await pool.query(clientSystemSchemaSql);
    await pool.query(seedSql(tenantCount, registersPerTenant));
    if (tenantIndexes)
      await pool.query(`CREATE INDEX ON meter (tenant_id); CREATE INDEX ON meter_element (tenant_id);
        CREATE INDEX ON register (tenant_id); CREATE INDEX ON device_register (register_id);`);
    await pool.query(
      `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${tenants.map(roleOf).join(', ')}`,
    );
    await pool.query('VACUUM ANALYZE');
  });
  await createDatabase('target_template');
  await withDatabase('target_template', (pool) => pool.query(syncSchemaSql));

  for (const tenant of tenants) agents.push(new Agent(tenant));
  await Promise.all(agents.map((agent) => agent.ready));
  await warmUp(agents);

  for (const mode of modes) {
    const sourceDatabase = `source_${mode}`;
    const targetOf = (tenant: number) => `target_${mode}_${tenant}`;
    await createDatabase(sourceDatabase, 'source_template');
    for (const tenant of tenants) await createDatabase(targetOf(tenant), 'target_template');
    const changes = new ChangeStream();
    await runPhase(agents, mode, 'first sync', 0, sourceDatabase, targetOf);
    for (let round = 1; round <= rounds; round++) {
      await runPhase(agents, mode, 'no change', round, sourceDatabase, targetOf);
      await withDatabase(sourceDatabase, (pool) => pool.query(changes.next(round)));
      await runPhase(agents, mode, '1% changed', round, sourceDatabase, targetOf);
    }
    const mismatches = await verify(sourceDatabase, targetOf);
    verification[mode] = { ok: mismatches.length === 0, mismatches };
    if (mismatches.length > 0)
      console.error(
        `  ${mode}: sync databases differ from the source:\n    ${mismatches.join('\n    ')}`,
      );
    for (const tenant of tenants)
      await admin.query(`DROP DATABASE "${targetOf(tenant)}" WITH (FORCE)`);
    await admin.query(`DROP DATABASE "${sourceDatabase}" WITH (FORCE)`);
  }
} finally {
  await Promise.all(agents.map((agent) => agent.stop()));
  await admin.end();
  await bouncer?.stop();
  await server.stop();
}

// ---------------------------------------------------------------- figures

const mean = (values: readonly number[]) =>
  values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
const percentile = (values: readonly number[], p: number) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
};
const haveSchedstat = runs.length > 0 && runs.every((r) => r.cpuSchedMs !== null);
/** The CPU figure the projection uses: schedstat's nanoseconds where kept, else the ticks. */
const cpuOf = (r: RunRecord) => (haveSchedstat ? (r.cpuSchedMs as number) : r.cpuMs);

interface Summary {
  mode: FleetMode;
  phase: Phase;
  agents: number;
  runs: number;
  failed: number;
  cpuMsPerRun: number;
  cpuSchedMsPerRun: number | null;
  execMsPerRun: number;
  nestedExecMsPerRun: number;
  bytesPerRun: number;
  rowsPerRun: number;
  rowsReceivedPerRun: number | null;
  callsPerRun: number;
  p50Ms: number;
  p95Ms: number;
  writesPerRun: { inserted: number; updated: number; deleted: number };
  detection: Record<string, Record<string, number>>;
  unreadBackends: number;
  /** Through PgBouncer: server backends started per run; null when direct (one per connection). */
  startedBackendsPerRun: number | null;
  /** Per phase (all agents at once), mean over its rounds. */
  perPhase: { cpuMs: number; execMs: number; bytes: number; rows: number; wallMs: number };
  evictedStatements: number;
}

const summaries: Summary[] = [];
for (const mode of modes) {
  for (const phase of PHASES) {
    const these = runs.filter((r) => r.mode === mode && r.phase === phase);
    if (these.length === 0) continue;
    const instances = phases.filter((p) => p.mode === mode && p.phase === phase);
    const writes = { inserted: 0, updated: 0, deleted: 0 };
    const detection: Record<string, Record<string, number>> = {};
    for (const run of these) {
      for (const [name, entity] of Object.entries(run.entities)) {
        writes.inserted += entity.inserted;
        writes.updated += entity.updated;
        writes.deleted += entity.deleted;
        const how = entity.detection ?? (mode === 'naive' ? 'everything' : 'none');
        detection[name] ??= {};
        (detection[name] as Record<string, number>)[how] =
          ((detection[name] as Record<string, number>)[how] ?? 0) + 1;
      }
    }
    const perRun = these.length;
    const total = (pick: (r: RunRecord) => number) => these.reduce((a, r) => a + pick(r), 0);
    summaries.push({
      mode,
      phase,
      agents: agentCount,
      runs: perRun,
      failed: these.filter((r) => !r.ok).length,
      cpuMsPerRun: mean(these.map((r) => r.cpuMs)),
      cpuSchedMsPerRun: haveSchedstat ? mean(these.map((r) => r.cpuSchedMs as number)) : null,
      execMsPerRun: mean(these.map((r) => r.execMs)),
      nestedExecMsPerRun: mean(these.map((r) => r.nestedExecMs)),
      bytesPerRun: mean(these.map((r) => r.sourceBytes)),
      rowsPerRun: mean(these.map((r) => r.rows)),
      rowsReceivedPerRun:
        mode === 'naive' ? mean(these.map((r) => r.rowsReceived ?? Number.NaN)) : null,
      callsPerRun: mean(these.map((r) => r.calls)),
      p50Ms: percentile(
        these.map((r) => r.ms),
        50,
      ),
      p95Ms: percentile(
        these.map((r) => r.ms),
        95,
      ),
      writesPerRun: {
        inserted: writes.inserted / perRun,
        updated: writes.updated / perRun,
        deleted: writes.deleted / perRun,
      },
      detection,
      unreadBackends: total((r) => r.unreadBackends),
      startedBackendsPerRun: bouncer ? mean(these.map((r) => r.startedBackends ?? 0)) : null,
      perPhase: {
        cpuMs: total(cpuOf) / instances.length,
        execMs: total((r) => r.execMs) / instances.length,
        bytes: total((r) => r.sourceBytes) / instances.length,
        rows: total((r) => r.rows) / instances.length,
        wallMs: mean(instances.map((p) => p.wallMs)),
      },
      evictedStatements: Math.max(0, ...instances.map((p) => p.evictedStatements)),
    });
  }
}

interface Projection {
  mode: FleetMode;
  workload: string;
  cpuMsPerRun: number;
  execMsPerRun: number;
  bytesPerRun: number;
  sites: { sites: number; cores: number; coresByExecTime: number; mbitPerSecond: number }[];
}

const projections: Projection[] = [];
for (const mode of modes) {
  const of = (phase: Phase) => summaries.find((s) => s.mode === mode && s.phase === phase);
  const quiet = of('no change');
  const changed = of('1% changed');
  if (!quiet || !changed) continue;
  const cpu = (s: Summary) => s.cpuSchedMsPerRun ?? s.cpuMsPerRun;
  const workloads: [string, number][] = [
    ['no change', 0],
    [
      `${Math.round((1 - changedShare) * 100)}% no change, ${Math.round(changedShare * 100)}% 1% changed`,
      changedShare,
    ],
    ['1% changed', 1],
  ];
  for (const [workload, share] of workloads) {
    const blend = (pick: (s: Summary) => number) =>
      (1 - share) * pick(quiet) + share * pick(changed);
    const cpuMsPerRun = blend(cpu);
    const execMsPerRun = blend((s) => s.execMsPerRun);
    const bytesPerRun = blend((s) => s.bytesPerRun);
    projections.push({
      mode,
      workload,
      cpuMsPerRun,
      execMsPerRun,
      bytesPerRun,
      sites: FLEET_SIZES.map((sites) => ({
        sites,
        cores: (sites * cpuMsPerRun) / 1000 / INTERVAL_SECONDS,
        coresByExecTime: (sites * execMsPerRun) / 1000 / INTERVAL_SECONDS,
        mbitPerSecond: (sites * bytesPerRun * 8) / INTERVAL_SECONDS / 1e6,
      })),
    });
  }
}

// ---------------------------------------------------------------- output

const number = (value: number | null, digits = 0) =>
  value === null || !Number.isFinite(value)
    ? '–'
    : value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const kilobytes = (bytes: number) => `${number(bytes / 1024, 1)} KiB`;
const registersTotal = tenantCount * registersPerTenant;
const sourceShape =
  tenantCount === agentCount
    ? 'one tenant each'
    : `one tenant each, ${tenantCount} tenants in the source`;

const lines = [
  `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGb} GiB; load average at start ${machine.loadAverageAtStart.join(' ')}; Node ${machine.node}; ${machine.postgres}`,
  `Fleet: ${agentCount} sites syncing at once ${sourceConnection}, ${sourceShape}: ${DEVICES_PER_TENANT} devices, ${METERS_PER_TENANT} meters × ${ELEMENTS_PER_METER} elements, ${registersPerTenant.toLocaleString('en')} registers per tenant (${registersTotal.toLocaleString('en')} in all); device_register ${registersTotal.toLocaleString('en')} rows shared by all; ${tenantIndexes ? 'indexes on the tenant columns and device_register (register_id) added' : 'the Client System schema as it is (no index on tenant columns)'}; jit ${jitSetting}. ${rounds} rounds of "no change" and "1% changed" (per tenant and round: ${UPDATES} registers updated, ${INSERTS} inserted, ${DELETES} deleted; device_register: ${INSERTS} added, ${DELETES} removed, ${MOVES} moved to another device).`,
  `The source and every site's sync database are databases of one local PostgreSQL server: the sync databases' work shares its CPU, and only the source backends are counted.${bouncer ? ' PgBouncer runs on the same machine; its own CPU is not counted. The sync databases are reached directly.' : ''}`,
  bouncer
    ? `Source CPU: of the server backends of each run's site role (PgBouncer's server connections, from pg_stat_activity), what they spent between the run's start and its end: utime + stime from /proc/<pid>/stat (CLK_TCK ${clockTicks}, so ${1000 / clockTicks} ms steps per backend)${haveSchedstat ? ', and on-CPU time from /proc/<pid>/schedstat (ns), which the projection uses' : ''}; a server backend started during the run counts whole, start-up included. Source exec: pg_stat_statements total_exec_time of top-level statements of the agent's role; rows: their rows (FETCH and COPY rows included). Bytes: read on the agent's sockets to PgBouncer, so between the agent and PgBouncer (not between PgBouncer and the server), connection start-up to PgBouncer included. Source exec is execution time on the server's clock, so on a busy machine it includes waiting for a CPU (and, for COPY, for the client). Each run opens its own connections to PgBouncer; PgBouncer keeps its server connections from run to run, so a mode's first sync starts them and later runs reuse them.`
    : `Source CPU: utime + stime of each run's source backends from /proc/<pid>/stat (CLK_TCK ${clockTicks}, so ${1000 / clockTicks} ms steps per backend)${haveSchedstat ? ', and their on-CPU time from /proc/<pid>/schedstat (ns), which the projection uses' : ''}. Source exec: pg_stat_statements total_exec_time of top-level statements of the agent's role; rows: their rows (FETCH and COPY rows included). Bytes: read on the agent's source sockets, connection start-up included. Source exec is execution time on the server's clock, so on a busy machine it includes waiting for a CPU (and, for COPY, for the client). Each run opens its own connections.`,
  '',
  `| phase | mode | agents | runs | source CPU ms/run (stat) | source CPU ms/run (schedstat) | source exec ms/run | bytes/run | rows/run | p50 run ms | p95 run ms | writes/run (ins/upd/del) | failed |`,
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
];
for (const phase of PHASES) {
  for (const s of summaries.filter((x) => x.phase === phase)) {
    lines.push(
      `| ${s.phase} | ${s.mode} | ${s.agents} | ${s.runs} | ${number(s.cpuMsPerRun, 1)} | ${number(s.cpuSchedMsPerRun, 1)} | ${number(s.execMsPerRun, 1)} | ${kilobytes(s.bytesPerRun)} | ${number(s.rowsPerRun)} | ${number(s.p50Ms)} | ${number(s.p95Ms)} | ${number(s.writesPerRun.inserted)} / ${number(s.writesPerRun.updated)} / ${number(s.writesPerRun.deleted)} | ${s.failed} |`,
    );
  }
}
lines.push(
  '',
  'Per phase, all agents at once (mean over the rounds):',
  '',
  `| phase | mode | source CPU ms (${haveSchedstat ? 'schedstat' : 'stat'}) | source exec ms | bytes from source | rows from source | wall time |`,
  '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
);
for (const phase of PHASES) {
  for (const s of summaries.filter((x) => x.phase === phase)) {
    lines.push(
      `| ${s.phase} | ${s.mode} | ${number(s.perPhase.cpuMs)} | ${number(s.perPhase.execMs)} | ${kilobytes(s.perPhase.bytes)} | ${number(s.perPhase.rows)} | ${number(s.perPhase.wallMs / 1000, 2)} s |`,
    );
  }
}
lines.push(
  '',
  `Capacity projection: every site syncs once every ${INTERVAL_SECONDS / 60} minutes, runs spread evenly; source CPU cores = sites × CPU s per run / ${INTERVAL_SECONDS}, network = sites × bytes per run × 8 / ${INTERVAL_SECONDS} / 10^6. Per-run figures as measured above with ${agentCount} agents at once; the steady state is taken as ${Math.round((1 - changedShare) * 100)}% of runs finding nothing changed and ${Math.round(changedShare * 100)}% finding 1% of the registers changed (--mix). Cores by exec time: the same from pg_stat_statements' execution time.`,
  '',
  `| mode | workload | CPU ms/run | bytes/run | ${FLEET_SIZES.map((n) => `${n.toLocaleString('en')} sites: cores | cores by exec time | Mbit/s`).join(' | ')} |`,
  `| --- | --- | ---: | ---: | ${FLEET_SIZES.map(() => '---: | ---: | ---:').join(' | ')} |`,
);
for (const p of projections) {
  lines.push(
    `| ${p.mode} | ${p.workload} | ${number(p.cpuMsPerRun, 1)} | ${kilobytes(p.bytesPerRun)} | ${p.sites
      .map(
        (s) =>
          `${number(s.cores, 2)} | ${number(s.coresByExecTime, 2)} | ${number(s.mbitPerSecond, 2)}`,
      )
      .join(' | ')} |`,
  );
}
const notes: string[] = [
  `The per-run figures are those of a source of ${tenantCount.toLocaleString('en')} tenants (${registersTotal.toLocaleString('en')} registers and device_register rows): a statement that scans a whole table costs more on a larger source, so the projection holds for a source of this size; --tenants measures a larger one.`,
];
for (const [mode, check] of Object.entries(verification))
  notes.push(
    check.ok
      ? `${mode}: every sync database equals its tenant's rows on the source after the last round.`
      : `${mode}: ${check.mismatches.length} differences from the source after the last round (see the JSON).`,
  );
if (bouncer) {
  const started = summaries.map(
    (s) => `${s.mode} ${s.phase} ${number(s.startedBackendsPerRun, 2)}`,
  );
  const most = Math.max(0, ...runs.map((r) => r.backends));
  notes.push(
    `Server connections PgBouncer started per run: ${started.join(', ')}; most server backends of one role at a run's end: ${most}.`,
  );
}
const unread = summaries.reduce((a, s) => a + s.unreadBackends, 0);
if (unread > 0)
  notes.push(
    bouncer
      ? `${unread} server backends ended during a run: their CPU after the run's start is missing.`
      : `${unread} source backends ended before their CPU could be read.`,
  );
const evicted = Math.max(0, ...summaries.map((s) => s.evictedStatements));
if (evicted > 0)
  notes.push(`pg_stat_statements evicted ${evicted} entries in a phase: its figures undercount.`);
const failedRuns = runs.filter((r) => !r.ok).length;
if (failedRuns > 0) notes.push(`${failedRuns} runs failed (see the JSON).`);
lines.push('', ...notes);
console.log(lines.join('\n'));

mkdirSync('bench/results', { recursive: true });
const file = join('bench/results', `fleet-${machine.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  `${JSON.stringify(
    {
      machine,
      settings: {
        agents: agentCount,
        tenants: tenantCount,
        tenantIndexes,
        jit: jitSetting,
        rounds,
        registersPerTenant,
        devicesPerTenant: DEVICES_PER_TENANT,
        metersPerTenant: METERS_PER_TENANT,
        elementsPerMeter: ELEMENTS_PER_METER,
        changesPerTenantAndRound: {
          updates: UPDATES,
          inserts: INSERTS,
          deletes: DELETES,
          moves: MOVES,
        },
        modes,
        changedShare,
        intervalSeconds: INTERVAL_SECONDS,
        sameServer: true,
        sourceConnection: bouncer ? 'pgbouncer' : 'direct',
        pgbouncer: bouncer
          ? {
              version: pgBouncerVersion,
              poolMode: 'transaction',
              serverConnectionsPerRole: SERVER_CONNECTIONS_PER_ROLE,
              bytes: 'between the agent and PgBouncer',
              cpu: "each run's role's server backends, difference between the run's start and end",
            }
          : null,
      },
      summaries,
      projections,
      verification,
      phases,
      runs,
    },
    null,
    2,
  )}\n`,
);
console.log(`\n${file}; total ${((performance.now() - startedAll) / 1000).toFixed(0)} s`);
