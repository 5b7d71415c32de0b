import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { performSync } from '../../src/index.js';
import { gatedPool, until } from '../agent/support.js';
import { builtInPairOnPostgres, createDatabase } from '../support/postgres.js';
import { CLI, runCli, tableRow } from './run-cli.js';

const expectOneLine = (stderr: string) => {
  expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(stderr).toMatch(/^meter-sync: /);
};

/** The same URL with a password in it; the test server trusts local connections and ignores it. */
const withPassword = (url: string, password: string) => {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.toString();
};

async function targetSnapshot(pool: { query(text: string): Promise<{ rows: unknown[] }> }) {
  const tables = ['device', 'meter', 'register', 'device_register'];
  const rows = await Promise.all(
    tables.map((table) => pool.query(`SELECT * FROM "${table}" ORDER BY 1, 2`)),
  );
  return JSON.stringify(rows.map((result) => result.rows));
}

/** Changes the seeded remote: an update, an insert, a delete. */
async function changeRemote(pool: { query(text: string): Promise<unknown> }) {
  await pool.query(
    "UPDATE register SET name = 'Active energy import (total)' WHERE register_id = 101",
  );
  await pool.query(
    "INSERT INTO register (register_id, tenant_id, name, register, unit) VALUES (105, 1, 'Power factor', 3190, NULL)",
  );
  await pool.query('DELETE FROM device_register WHERE register_id = 104');
  await pool.query('DELETE FROM register WHERE register_id = 104');
}

describe('meter-sync init', () => {
  it('creates the sync tables, and running it again changes nothing', async () => {
    const target = await createDatabase('init');
    const first = await runCli(['init', '--target', target.url]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toMatch(
      /sync database ready: .* device, meter, register, device_register/,
    );
    const { rows } = await target.pool.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    expect(rows.map((row) => row.table_name)).toEqual([
      'device',
      'device_register',
      'meter',
      'meter_sync_lock',
      'meter_sync_watermark',
      'register',
    ]);
    expect(await runCli(['init', '--target', target.url])).toMatchObject({ code: 0, stderr: '' });
  });

  it('exits 2 with one masked line when the target cannot be reached', async () => {
    const run = await runCli(['init', '--target', 'postgres://meter:Tr0ub4dor-3@127.0.0.1:1/sync']);
    expect(run.code).toBe(2);
    expectOneLine(run.stderr);
    expect(run.stderr).toMatch(/creating the sync tables failed: .*ECONNREFUSED.*check --target/);
    expect(run.stderr + run.stdout).not.toContain('Tr0ub4dor');
  });
});

describe('meter-sync sync', () => {
  it('syncs once and prints one table row per entity, exit 0, nothing on stderr', async () => {
    const { remote, local } = await builtInPairOnPostgres([1, 2]);
    // A junction row naming a register that exists nowhere: an orphan, with its warning.
    await remote.pool.query(`ALTER TABLE device_register DROP CONSTRAINT device_register_register_id_fkey;
      INSERT INTO device_register (device_id, register_id) VALUES (3, 999)`);
    const run = await runCli([
      'sync',
      '--source',
      remote.url,
      '--target',
      local.url,
      '--tenant',
      '1',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /entity\s+inserted\s+updated\s+deleted\s+skipped\s+status\s+rows read\s+time/,
    );
    expect(tableRow(run.stdout, 'device')).toEqual(['3', '0', '0', '0', 'ok']);
    expect(tableRow(run.stdout, 'meter')).toEqual(['6', '0', '0', '0', 'ok']);
    expect(tableRow(run.stdout, 'register')).toEqual(['4', '0', '0', '0', 'ok']);
    expect(tableRow(run.stdout, 'device_register')).toEqual(['6', '0', '0', '1', 'ok']);
    expect(run.stdout).toMatch(/warning {2}device_register: skipped 1 source row/);
    expect(run.stdout).toMatch(
      /synced 4 entities in \d+ ms: 19 inserted, 0 updated, 0 deleted, 1 skipped/,
    );
    expect(run.stdout).not.toContain('\x1b');
    expect(run.stdout).not.toContain('\r');
    const { rows } = await local.pool.query('SELECT count(*)::int AS n FROM register');
    expect(rows[0].n).toBe(4);
  });

  it('prints the result as JSON with --json, and nothing else', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const run = await runCli([
      'sync',
      '--source',
      remote.url,
      '--target',
      local.url,
      '--tenant',
      '1',
      '--json',
    ]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({
      ok: true,
      dryRun: false,
      tenantId: '1',
      entities: {
        device: { status: 'ok', inserted: 3, updated: 0, deleted: 0, skipped: 0, unchanged: 0 },
        register: { status: 'ok', inserted: 4 },
      },
    });
    expect(Object.keys(result.entities)).toEqual([
      'device',
      'meter',
      'register',
      'device_register',
    ]);
    expect(new Date(result.finishedAt).getTime()).toBeGreaterThanOrEqual(
      new Date(result.startedAt).getTime(),
    );
  });

  it('takes the URLs from METER_SYNC_SOURCE_URL and METER_SYNC_TARGET_URL', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const run = await runCli(['sync', '--tenant', '1', '--entities', 'device,register'], {
      env: { METER_SYNC_SOURCE_URL: remote.url, METER_SYNC_TARGET_URL: local.url },
    });
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(tableRow(run.stdout, 'register')).toEqual(['4', '0', '0', '0', 'ok']);
    expect(tableRow(run.stdout, 'meter')).toBeUndefined();
    const { rows } = await local.pool.query('SELECT count(*)::int AS n FROM meter');
    expect(rows[0].n).toBe(0);
  });

  it('exits 1 when an entity fails, and names the error and the fix', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await local.pool.query('DROP TABLE device_register');
    const run = await runCli([
      'sync',
      '--source',
      remote.url,
      '--target',
      local.url,
      '--tenant',
      '1',
    ]);
    expect(run.code).toBe(1);
    expect(tableRow(run.stdout, 'register')).toEqual(['4', '0', '0', '0', 'ok']);
    expect(tableRow(run.stdout, 'device_register')?.[4]).toBe('FAILED');
    expect(run.stdout).toMatch(
      /error {4}device_register: target table "device_register" does not exist/,
    );
    expect(run.stdout).toMatch(/hint {5}meter-sync init --target URL creates the tables/);
    expect(run.stdout).toMatch(/1 of 4 entities FAILED/);
  });

  it('never prints a password, in tables or in errors', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const password = 'Corr3ct-H0rse';
    const run = await runCli([
      'sync',
      '--source',
      withPassword(remote.url, password),
      '--target',
      withPassword(local.url, password),
      '--tenant',
      '1',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/postgres:\*\*\*@127\.0\.0\.1/);
    expect(run.stdout + run.stderr).not.toContain(password);

    const down = await runCli(['sync', '--tenant', '1'], {
      env: {
        METER_SYNC_SOURCE_URL: `postgres://meter:${password}@127.0.0.1:1/client`,
        METER_SYNC_TARGET_URL: withPassword(local.url, password),
      },
    });
    expect(down.code).toBe(2);
    expectOneLine(down.stderr);
    expect(down.stderr).toMatch(
      /connecting to the source failed: .*ECONNREFUSED.*; check METER_SYNC_SOURCE_URL and that the server accepts connections/,
    );
    expect(down.stdout + down.stderr).not.toContain(password);
  });

  it.each([
    [
      ['sync', '--target', 'postgres://h/db', '--tenant', '1'],
      /no source database: give --source or set METER_SYNC_SOURCE_URL/,
    ],
    [
      ['sync', '--source', 'not a url', '--target', 'postgres://h/db'],
      /--source is neither a postgres:\/\/ URL nor a keyword\/value string \(host=… dbname=…\)/,
    ],
    [
      ['sync', '--source', 'mysql://u:hunter22@h/db', '--target', 'postgres://h/db'],
      /--source must be a postgres:\/\/ or postgresql:\/\/ URL/,
    ],
    [
      ['sync', '--source', 'postgres://h/a', '--target', 'postgres://h/b', '--tenant', 'acme'],
      /--tenant must be a whole number/,
    ],
    [
      ['sync', '--source', 'postgres://h/a', '--target', 'postgres://h/b'],
      /--tenant is required: meter, register are tenant-scoped \(without a tenant, only --entities device,device_register can run\)/,
    ],
    [
      [
        'sync',
        '--source',
        'postgres://h/a',
        '--target',
        'postgres://h/b',
        '--tenant',
        '1',
        '--entities',
        'device,meters',
      ],
      /--entities: unknown entity "meters"; choose from device, meter, register, device_register/,
    ],
    [['sync', '--source', 'postgres://h/a', '--bogus'], /unknown option '--bogus'/],
    [['synk'], /unknown command 'synk' \(Did you mean sync\?\)/],
    [['sync', '--tenat', '1'], /unknown option '--tenat' \(Did you mean --tenant\?\)/],
  ])('exits 2 with one line that says what to fix: %j', async (args, message) => {
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expectOneLine(run.stderr);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toContain('hunter22');
  });

  it('exits 2 and prints usage when given no command', async () => {
    const run = await runCli([]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Usage: meter-sync/);
  });

  it('exits 3 while another sync holds the lock, and with --wait waits for it', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const held = gatedPool(remote.pool);
    const other = performSync({ source: held.pool, target: local.pool, tenantId: 1 });
    await until(() => held.waiting() > 0);
    const args = ['sync', '--source', remote.url, '--target', local.url, '--tenant', '1'];

    const locked = await runCli(args);
    expect(locked.code).toBe(3);
    expectOneLine(locked.stderr);
    expect(locked.stderr).toMatch(/another sync holds the sync lock.*pass --wait to wait for it/);

    let waitedRun: Awaited<ReturnType<typeof runCli>> | undefined;
    const waiting = runCli([...args, '--wait']).then((run) => {
      waitedRun = run;
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(waitedRun).toBeUndefined();
    held.open();
    await other;
    await waiting;
    expect(waitedRun?.code).toBe(0);
    expect(tableRow(waitedRun?.stdout ?? '', 'register')).toEqual(['0', '0', '0', '0', 'ok']);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)(
    'draws progress on a terminal and clears it, leaving the table',
    async () => {
      const { remote, local } = await builtInPairOnPostgres([1]);
      const command = [
        process.execPath,
        CLI,
        'sync',
        '--source',
        remote.url,
        '--target',
        local.url,
        '--tenant',
        '1',
      ]
        .map((part) => `'${part}'`)
        .join(' ');
      const terminal = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8' });
      expect(terminal.status).toBe(0);
      expect(terminal.stdout).toContain('\r\x1b[2Kdevice: starting…');
      expect(terminal.stdout).toContain('\r\x1b[2Kdevice_register: starting…');
      expect(terminal.stdout).toMatch(/device_register\s+6\s+0\s+0\s+0\s+ok/);
    },
  );
});

describe('meter-sync plan', () => {
  it('prints what a sync would change, with the keys when verbose, and writes nothing', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    await changeRemote(remote.pool);
    const before = await targetSnapshot(local.pool);

    const args = ['plan', '--source', remote.url, '--target', local.url, '--tenant', '1'];
    const run = await runCli([...args, '--verbose']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(
      /entity\s+insert\s+update\s+delete\s+skip\s+status\s+rows read\s+time/,
    );
    expect(tableRow(run.stdout, 'register')).toEqual(['1', '1', '1', '0', 'ok']);
    expect(tableRow(run.stdout, 'device_register')).toEqual(['0', '0', '1', '0', 'ok']);
    expect(run.stdout).toMatch(
      /register\n {2}insert {2}\(register_id=105\)\n {2}update {2}\(register_id=101\)\n {2}delete {2}\(register_id=104\)/,
    );
    expect(run.stdout).toMatch(/device_register\n {2}delete {2}\(device_id=2, register_id=104\)/);
    expect(run.stdout).toMatch(/would insert 1, update 1, delete 2, skip 0; nothing was written/);
    expect(await targetSnapshot(local.pool)).toBe(before);

    const quiet = await runCli(args);
    expect(quiet.stdout).not.toMatch(/\(register_id=105\)/);
    const json = JSON.parse((await runCli([...args, '--json', '--verbose'])).stdout);
    expect(json).toMatchObject({
      dryRun: true,
      entities: { register: { changes: { inserted: [{ register_id: '105' }] } } },
    });
    expect(await targetSnapshot(local.pool)).toBe(before);
  });
});
