import { spawn } from 'node:child_process';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { builtInPairOnPostgres } from '../support/postgres.js';
import { CLI, runCli } from './run-cli.js';

/** The sessions meter-sync holds on these databases. */
async function meterSyncSessions(databases: readonly string[]): Promise<number> {
  const client = new pg.Client({ connectionString: inject('postgresUrl') });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ANY($1) AND application_name = 'meter-sync'",
      [databases],
    );
    return rows[0].n;
  } finally {
    await client.end();
  }
}

describe('meter-sync agent', () => {
  it('syncs on its schedule, one JSON line per run, and stops cleanly on SIGTERM', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const env = { ...process.env };
    delete env.METER_SYNC_SOURCE_URL;
    delete env.METER_SYNC_TARGET_URL;
    const child = spawn(
      process.execPath,
      [CLI, 'agent', '--tenant', '1', '--schedule', '200', '--json'],
      {
        env: { ...env, METER_SYNC_SOURCE_URL: remote.url, METER_SYNC_TARGET_URL: local.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const lines = () =>
      stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line));
    try {
      const deadline = Date.now() + 20_000;
      while (lines().filter((line) => line.type === 'run-end').length < 3) {
        if (Date.now() > deadline) throw new Error(`no runs: ${stdout} ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // The pools keep their connections between runs.
      expect(await meterSyncSessions([remote.name, local.name])).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
    }
    const signalled = Date.now();
    const code = await exited;
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(code).toBe(0);
    expect(stderr).toBe('');

    const output = lines();
    expect(output[0]).toMatchObject({ type: 'start', tenantId: '1', schedule: 200 });
    const runs = output.filter((line) => line.type === 'run-end');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs[0]).toMatchObject({ ok: true, entities: { register: { inserted: 4 } } });
    expect(runs[1]).toMatchObject({
      ok: true,
      entities: { register: { inserted: 0, unchanged: 4 } },
    });
    expect(output.at(-1)).toMatchObject({
      type: 'stopped',
      signal: 'SIGTERM',
      ok: true,
      exitCode: 0,
      runs: runs.length,
    });
    // Closed by the agent before it exits; the server may take a moment to notice.
    const closedBy = Date.now() + 3000;
    while ((await meterSyncSessions([remote.name, local.name])) > 0 && Date.now() < closedBy) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await meterSyncSessions([remote.name, local.name])).toBe(0);
  });

  it('refuses to start without a valid schedule, in one JSON object or one line', async () => {
    const none = await runCli([
      'agent',
      '--source',
      'postgres://h/a',
      '--target',
      'postgres://h/b',
      '--tenant',
      '1',
      '--json',
    ]);
    expect(none.code).toBe(2);
    expect(JSON.parse(none.stdout)).toMatchObject({
      ok: false,
      error: { message: expect.stringMatching(/^no schedule/) },
    });
    const badCron = await runCli([
      'agent',
      '--source',
      'postgres://h/a',
      '--target',
      'postgres://h/b',
      '--tenant',
      '1',
      '--schedule',
      'every minute',
    ]);
    expect(badCron.code).toBe(2);
    expect(badCron.stderr).toMatch(/cron "every minute" is not a valid cron expression/);
  });
});
