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

/** `meter-sync agent …` as a child process, its stdout read as JSON lines. */
function startAgent(args: readonly string[], env: Record<string, string>) {
  const base = { ...process.env };
  delete base.METER_SYNC_SOURCE_URL;
  delete base.METER_SYNC_TARGET_URL;
  const child = spawn(process.execPath, [CLI, 'agent', ...args], {
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => {
    output.stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output.stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const lines = () =>
    output.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  return { child, output, exited, lines };
}

async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('meter-sync agent', () => {
  it('syncs on its schedule, one JSON line per run, and stops cleanly on SIGTERM', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const {
      child,
      output: streams,
      exited,
      lines,
    } = startAgent(['--tenant', '1', '--schedule', '200', '--json'], {
      METER_SYNC_SOURCE_URL: remote.url,
      METER_SYNC_TARGET_URL: local.url,
    });
    try {
      await until(
        () => lines().filter((line) => line.type === 'run-end').length >= 3,
        'three runs',
      );
      // The pools keep their connections between runs.
      expect(await meterSyncSessions([remote.name, local.name])).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
    }
    const signalled = Date.now();
    const code = await exited;
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(code).toBe(0);
    expect(streams.stderr).toBe('');

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

  it('on SIGTERM during a run, lets the run finish, then exits 0', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const holder = await local.pool.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE register IN ACCESS EXCLUSIVE MODE');
    let released = false;
    const agent = startAgent(['--tenant', '1', '--schedule', '60000', '--json'], {
      METER_SYNC_SOURCE_URL: remote.url,
      METER_SYNC_TARGET_URL: local.url,
    });
    try {
      // The first run waits for the lock on register.
      await until(async () => {
        const { rows } = await local.pool.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'meter-sync' AND wait_event_type = 'Lock'",
        );
        return rows[0].n > 0;
      }, 'the run to block on the lock');
      agent.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(agent.child.exitCode).toBeNull();
      await holder.query('ROLLBACK');
      released = true;
      const code = await agent.exited;
      expect(code).toBe(0);
      expect(agent.output.stderr).toBe('');
      const lines = agent.lines();
      expect(lines.map((line) => line.type)).toEqual(['start', 'run-end', 'stopped']);
      expect(lines[1]).toMatchObject({ ok: true, entities: { register: { inserted: 4 } } });
      expect(lines[2]).toMatchObject({ signal: 'SIGTERM', runs: 1, finishedRunInFlight: true });
    } finally {
      if (!released) await holder.query('ROLLBACK');
      holder.release();
      agent.child.kill('SIGKILL');
    }
  });

  it('without --json, one text line per run and one when it stops', async () => {
    const { remote, local } = await builtInPairOnPostgres([1]);
    const agent = startAgent(['--tenant', '1', '--schedule', '200'], {
      METER_SYNC_SOURCE_URL: remote.url,
      METER_SYNC_TARGET_URL: local.url,
    });
    const runLines = () => agent.output.stdout.split('\n').filter((line) => / sync of /.test(line));
    try {
      await until(() => runLines().length >= 2, 'two runs');
    } finally {
      agent.child.kill('SIGINT');
    }
    expect(await agent.exited).toBe(0);
    const lines = agent.output.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^\S+Z agent started: tenant 1, every 200 ms, postgres:\/\/.* -> postgres:\/\//,
    );
    expect(runLines()[0]).toMatch(
      /^\S+Z sync of tenant 1: 19 inserted, 0 updated, 0 deleted, 0 skipped in \d+ ms$/,
    );
    expect(runLines()[1]).toMatch(/sync of tenant 1: 0 inserted, 0 updated, 0 deleted, 0 skipped/);
    expect(lines.at(-1)).toMatch(/agent stopped on SIGINT after \d+ runs; connections closed$/);
    expect(agent.output.stderr).toBe('');
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
