import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { startPostgres } from './scripts/postgres.js';
import { clientSystemSchemaSql } from './src/sample/index.js';
import { syncSchemaSql } from './src/builtins/index.js';

const server = await startPostgres();
const admin = new pg.Pool({ connectionString: server.url() });
await admin.query('CREATE DATABASE src'); await admin.query('CREATE DATABASE dst');
const src = new pg.Pool({ connectionString: server.url('src') });
const dst = new pg.Pool({ connectionString: server.url('dst') });
await src.query(clientSystemSchemaSql);
await dst.query(syncSchemaSql);
await src.query(`INSERT INTO device (manufacturer) SELECT 'm' || i FROM generate_series(1, 10) i;
 INSERT INTO register (tenant_id, name, register, unit, field_name) SELECT 1, 'Register ' || i, i, 'kWh', 'f' || i FROM generate_series(1, 300000) i;
 INSERT INTO register (tenant_id, name, register, unit, field_name) SELECT 2, 'Other ' || i, i, 'kWh', 'f' FROM generate_series(1, 1000) i;
 INSERT INTO device_register (device_id, register_id) SELECT 1 + i % 10, i FROM generate_series(1, 300000) i;`);
const env = { ...process.env, METER_SYNC_SOURCE_URL: server.url('src'), METER_SYNC_TARGET_URL: server.url('dst') };
const time = (args: string[]) => {
  const out = execFileSync('/usr/bin/time', ['-v', 'node', 'dist/cli.js', ...args, '--tenant', '1', '--json'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] , maxBuffer: 1e8});
  return out;
};
const run = (args: string[]) => {
  try {
    const r = execFileSync('/usr/bin/time', ['-f', '%M KB %e s', 'node', 'dist/cli.js', ...args, '--tenant', '1', '--json'], { env, encoding: 'utf8', maxBuffer: 1e8, stdio: ['ignore', 'pipe', 'pipe'] });
    return r;
  } catch (e) { return String((e as {stderr?: string}).stderr ?? e); }
};
const { spawnSync } = await import('node:child_process');
const measured = (args: string[]) => {
  const r = spawnSync('/usr/bin/time', ['-f', 'PEAK %M KB %e s', 'node', 'dist/cli.js', ...args, '--tenant', '1', '--json'], { env, encoding: 'utf8', maxBuffer: 1e8 });
  const peak = /PEAK (\d+) KB ([\d.]+) s/.exec(r.stderr);
  const json = JSON.parse(r.stdout);
  const counts = Object.fromEntries(Object.entries(json.entities ?? {}).map(([k, v]) => { const e = v as Record<string, unknown>; return [k, [e.status, e.inserted, e.updated, e.deleted, e.skipped]]; }));
  console.log(args[0], 'exit', r.status, 'peak MB', peak ? Math.round(Number(peak[1]) / 1024) : '?', 's', peak?.[2], JSON.stringify(counts));
};
measured(['sync']);
await src.query(`UPDATE register SET unit = 'Wh' WHERE tenant_id = 1 AND register_id % 100 = 3`);
measured(['plan']);
measured(['sync']);
await Promise.all([src.end(), dst.end(), admin.end()]);
await server.stop();
