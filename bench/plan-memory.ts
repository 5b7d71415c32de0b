/**
 * The CLI on the built-in entities at fleet-site size: 300,000 registers of one tenant, each
 * wired to a device. Runs `meter-sync sync`, changes 1% of the registers, then `meter-sync plan`
 * and `meter-sync sync`, each as a process of its own, and prints each one's peak RSS (from
 * /usr/bin/time), wall time and counts.
 *
 *   npm run bench:plan            (npx tsx bench/plan-memory.ts [registers])
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { startPostgres } from '../scripts/postgres.js';
import { syncSchemaSql } from '../src/builtins/index.js';
import { clientSystemSchemaSql } from '../src/sample/index.js';

const registers = Number(process.argv[2] ?? 300_000);
if (!existsSync('/usr/bin/time')) throw new Error('needs /usr/bin/time (Debian package "time")');
if (!existsSync('dist/cli.js')) throw new Error('needs the built CLI: npm run build');

const server = await startPostgres();
try {
  const admin = new pg.Pool({ connectionString: server.url() });
  await admin.query('CREATE DATABASE client_system');
  await admin.query('CREATE DATABASE sync_database');
  await admin.end();
  const source = new pg.Pool({ connectionString: server.url('client_system') });
  const target = new pg.Pool({ connectionString: server.url('sync_database') });
  await source.query(clientSystemSchemaSql);
  await target.query(syncSchemaSql);
  await source.query(`INSERT INTO device (manufacturer) SELECT 'maker ' || i FROM generate_series(1, 10) AS i;
    INSERT INTO register (tenant_id, name, register, unit, field_name)
      SELECT 1, 'Register ' || i, i, 'kWh', 'field_' || i FROM generate_series(1, ${registers}) AS i;
    INSERT INTO register (tenant_id, name, register, unit, field_name)
      SELECT 2, 'Other ' || i, i, 'kWh', 'other' FROM generate_series(1, 1000) AS i;
    INSERT INTO device_register (device_id, register_id)
      SELECT 1 + i % 10, i FROM generate_series(1, ${registers}) AS i;
    ANALYZE`);
  const env = {
    ...process.env,
    METER_SYNC_SOURCE_URL: server.url('client_system'),
    METER_SYNC_TARGET_URL: server.url('sync_database'),
  };
  const measured = (command: 'sync' | 'plan') => {
    const run = spawnSync(
      '/usr/bin/time',
      ['-f', 'PEAK %M KB %e s', 'node', 'dist/cli.js', command, '--tenant', '1', '--json'],
      { env, encoding: 'utf8', maxBuffer: 1 << 28 },
    );
    const peak = /PEAK (\d+) KB ([\d.]+) s/.exec(run.stderr);
    const result = JSON.parse(run.stdout) as {
      entities?: Record<
        string,
        { status: string; inserted: number; updated: number; deleted: number; skipped: number }
      >;
    };
    const counts = Object.entries(result.entities ?? {})
      .map(
        ([name, e]) =>
          `${name} ${e.status} +${e.inserted} ~${e.updated} -${e.deleted} skipped ${e.skipped}`,
      )
      .join('; ');
    console.log(
      `${command.padEnd(5)} exit ${run.status}  peak RSS ${peak ? Math.round(Number(peak[1]) / 1024) : '?'} MB  ${peak?.[2] ?? '?'} s  ${counts}`,
    );
  };
  console.log(
    `meter-sync CLI, built-in entities, ${registers.toLocaleString('en')} registers of tenant 1`,
  );
  measured('sync');
  await source.query(
    `UPDATE register SET unit = 'Wh' WHERE tenant_id = 1 AND register_id % 100 = 3`,
  );
  measured('plan');
  measured('sync');
  await Promise.all([source.end(), target.end()]);
} finally {
  await server.stop();
}
