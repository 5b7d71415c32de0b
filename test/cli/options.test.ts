import { describe, expect, it } from 'vitest';
import { performSync } from '../../src/index.js';
import { gatedPool, until } from '../agent/support.js';
import { builtInPairOnPostgres, openPool } from '../support/postgres.js';
import { runCli, tableRow } from './run-cli.js';

const countRegisters = async (pool: { query(text: string): Promise<{ rows: { n: number }[] }> }) =>
  (await pool.query('SELECT count(*)::int AS n FROM register')).rows[0]?.n;

describe('sync and plan options', () => {
  it('--lock-timeout and --statement-timeout reach the run: a locked table fails fast', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const holder = openPool(local.url, 1);
    const client = await holder.connect();
    await client.query('BEGIN');
    await client.query('LOCK TABLE register IN ACCESS EXCLUSIVE MODE');
    try {
      const args = ['sync', '--source', remote.url, '--target', local.url, '--tenant', '1'];
      const started = Date.now();
      const lock = await runCli([...args, '--lock-timeout', '300', '--json']);
      expect(lock.code).toBe(1);
      const lockResult = JSON.parse(lock.stdout);
      expect(lockResult).toMatchObject({
        ok: false,
        exitCode: 1,
        entities: { device: { status: 'ok' }, register: { status: 'failed' } },
        error: { message: expect.stringMatching(/register: .*lock timeout/) },
      });
      const statement = await runCli([...args, '--statement-timeout', '300', '--json']);
      expect(statement.code).toBe(1);
      expect(JSON.parse(statement.stdout).entities.register.error.message).toMatch(
        /statement timeout/,
      );
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('rejects a timeout that is not a whole number of milliseconds', async () => {
    const run = await runCli([
      'sync',
      '--source',
      'postgres://h/a',
      '--target',
      'postgres://h/b',
      '--tenant',
      '1',
      '--statement-timeout',
      '5s',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--statement-timeout must be a whole number of milliseconds/);
  });

  it('sync --dry-run is plan: the same counts, nothing written', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const args = ['--source', remote.url, '--target', local.url, '--tenant', '1', '--json'];
    const dry = await runCli(['sync', '--dry-run', ...args]);
    expect(dry.code).toBe(0);
    const plan = await runCli(['plan', ...args]);
    const [dryResult, planResult] = [JSON.parse(dry.stdout), JSON.parse(plan.stdout)];
    expect(dryResult).toMatchObject({ ok: true, exitCode: 0, dryRun: true });
    for (const name of ['device', 'meter', 'register', 'device_register']) {
      expect(dryResult.entities[name].inserted).toBe(planResult.entities[name].inserted);
    }
    expect(dryResult.entities.register.inserted).toBe(4);
    expect(await countRegisters(local.pool)).toBe(0);
  });

  it('--log-level info logs each entity on stderr; --quiet prints nothing on success', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const args = ['sync', '--source', remote.url, '--target', local.url, '--tenant', '1'];
    const info = await runCli([...args, '--log-level', 'info']);
    expect(info.code).toBe(0);
    expect(info.stderr).toMatch(/ info {2}entity synced entity=register inserted=4/);
    expect(info.stderr).toMatch(/ info {2}sync finished /);
    expect(info.stderr).not.toMatch(/ debug /);
    const debug = await runCli([...args, '--log-level', 'debug', '--json']);
    expect(
      debug.stderr
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).level),
    ).toContain('debug');
    expect(JSON.parse(debug.stdout).ok).toBe(true);
    const quiet = await runCli([...args, '--quiet']);
    expect(quiet).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(tableRow(info.stdout, 'register')).toEqual(['4', '0', '0', '0', 'ok']);
    const bad = await runCli([...args, '--log-level', 'loud']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /--log-level.*loud.*Allowed choices are debug, info, warn, error, silent/,
    );
  });
});

describe('--json: one JSON object on stdout, whatever the outcome', () => {
  it('a usage error, a config error, a held lock', async () => {
    const usage = await runCli(['sync', '--bogus', '--json']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout)).toEqual({
      ok: false,
      exitCode: 2,
      error: { name: 'UsageError', message: expect.stringMatching(/unknown option '--bogus'/) },
    });

    const config = await runCli([
      'plan',
      '--config',
      '/nonexistent/meter-sync.config.ts',
      '--json',
    ]);
    expect(config.code).toBe(2);
    expect(JSON.parse(config.stdout)).toMatchObject({
      ok: false,
      exitCode: 2,
      error: { message: expect.stringMatching(/--config: no file at/) },
    });

    const { remote, local } = await builtInPairOnPostgres([1]);
    const held = gatedPool(remote.pool);
    const other = performSync({ source: held.pool, target: local.pool, tenantId: 1 });
    await until(() => held.waiting() > 0);
    const locked = await runCli([
      'sync',
      '--source',
      remote.url,
      '--target',
      local.url,
      '--tenant',
      '1',
      '--json',
    ]);
    held.open();
    await other;
    expect(locked.code).toBe(3);
    expect(JSON.parse(locked.stdout)).toEqual({
      ok: false,
      exitCode: 3,
      error: { name: 'LockedError', message: expect.stringMatching(/another sync holds/) },
    });
  });

  it('failed entities: the result, ok false, exit code 1 and the error', async () => {
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
      '--json',
    ]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({
      ok: false,
      exitCode: 1,
      entities: { register: { status: 'ok', inserted: 4 }, device_register: { status: 'failed' } },
      error: { message: expect.stringMatching(/^1 of 4 entities failed: device_register: /) },
    });
  });
});
