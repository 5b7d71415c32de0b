import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performSync } from '../../src/index.js';
import { type CliRun, runCli } from '../cli/run-cli.js';
import { createBuiltInPair, expectTargetEqualsSource } from './support/built-ins.js';
import {
  type Cluster,
  sessionsOf,
  startCluster,
  waitFor,
  withApplicationName,
} from './support/cluster.js';
import { report } from './support/figures.js';

const TENANT = 1;
/** Enough rows that a sync takes a while, so two started together overlap. */
const REGISTERS = 40_000;
const METERS = 15_000;
const LOCKED_MESSAGE = /another sync holds the sync lock on the target database/;

let cluster: Cluster;
let sourceUrl: string;
let targetUrl: string;
let source: pg.Pool;
let target: pg.Pool;
let round = 0;
const figures = {
  rounds: 0,
  lockedOut: 0,
  waited: 0,
  rowsChecked: 0,
  changesApplied: 0,
};

beforeAll(async () => {
  cluster = await startCluster();
  ({ sourceUrl, targetUrl } = await createBuiltInPair(cluster, {
    source: 'source',
    target: 'target',
  }));
  source = cluster.pool(sourceUrl);
  target = cluster.pool(targetUrl);
  const last = (count: number) => 1000 + count - 1;
  await source.query(`
    INSERT INTO register (register_id, tenant_id, name, register, unit, field_name)
      SELECT g, ${TENANT}, 'Register ' || g, 3000 + g % 1000, (ARRAY['kWh', 'kW', 'V'])[1 + g % 3], 'field_' || g
        FROM generate_series(1000, ${last(REGISTERS)}) AS g;
    INSERT INTO device_register (device_id, register_id)
      SELECT 1 + g % 3, g FROM generate_series(1000, ${last(REGISTERS)}) AS g;
    INSERT INTO meter (meter_id, tenant_id, name, device_id, ip, port, active)
      SELECT g, ${TENANT}, 'Meter ' || g, 1 + g % 3, '10.1.' || g / 250 % 250 || '.' || g % 250, 502, true
        FROM generate_series(1000, ${last(METERS)}) AS g;
    INSERT INTO meter_element (meter_element_id, meter_id, tenant_id, element, name)
      SELECT g * 10 + e, g, ${TENANT}, chr(64 + e), 'Phase ' || chr(64 + e)
        FROM generate_series(1000, ${last(METERS)}) AS g, generate_series(1, 3) AS e;
    ANALYZE;`);
  expect((await performSync({ source, target, tenantId: TENANT })).ok).toBe(true);
});

afterAll(async () => {
  report('concurrent-syncs', figures);
  await cluster?.stop();
});

/** Updates, inserts and deletes on register, device_register and meter; different each round. */
async function changeSource() {
  round++;
  const k = round;
  await source.query(`
    UPDATE register SET name = 'Register ' || register_id || ' r${k}' WHERE register_id >= 1000 AND register_id % 50 = ${k % 50};
    DELETE FROM device_register WHERE register_id IN (SELECT register_id FROM register WHERE register_id >= 1000 AND register_id % 97 = ${k});
    DELETE FROM register WHERE register_id >= 1000 AND register_id % 97 = ${k};
    INSERT INTO register (register_id, tenant_id, name, register, unit)
      SELECT g, ${TENANT}, 'Added ' || g, 4000, 'kvarh' FROM generate_series(${200_000 + k * 1000}, ${200_000 + k * 1000 + 499}) AS g;
    INSERT INTO device_register (device_id, register_id)
      SELECT 1 + g % 3, g FROM generate_series(${200_000 + k * 1000}, ${200_000 + k * 1000 + 499}) AS g;
    UPDATE meter SET port = ${502 + k} WHERE meter_id >= 1000 AND meter_id % 20 = ${k % 20};`);
}

interface SyncJson {
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  entities: Record<string, { inserted: number; updated: number; deleted: number; status: string }>;
}

function syncCommand(name: string, wait: boolean): Promise<CliRun> {
  return runCli(
    [
      'sync',
      '--source',
      withApplicationName(sourceUrl, name),
      '--target',
      withApplicationName(targetUrl, name),
      '--tenant',
      String(TENANT),
      '--json',
      ...(wait ? ['--wait'] : []),
    ],
    { timeoutMs: 120_000 },
  );
}

/** Inserted, updated and deleted rows of a run, all entities together. */
const changesOf = (result: SyncJson) =>
  Object.values(result.entities).reduce(
    (sum, entity) => sum + entity.inserted + entity.updated + entity.deleted,
    0,
  );

/**
 * The invariants of any two syncs into one target after one change on the source: each exits 0
 * or 3 (locked: the lock message, and with --json an object saying so), the runs that took the lock never overlapped in
 * time, the first of them applied the change and a second one found nothing left to do.
 */
function expectOneAppliedAtATime(runs: readonly CliRun[], wait: boolean) {
  for (const run of runs) {
    expect([0, 3], `exit code; stderr: ${run.stderr}`).toContain(run.code);
    if (run.code === 3) {
      expect(wait).toBe(false);
      expect(run.stderr).toMatch(LOCKED_MESSAGE);
      expect(JSON.parse(run.stdout)).toMatchObject({
        ok: false,
        exitCode: 3,
        error: { name: 'LockedError' },
      });
    }
  }
  const applied = runs
    .filter((run) => run.code === 0)
    .map((run) => JSON.parse(run.stdout) as SyncJson)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const [first, second] = applied;
  expect(first?.ok).toBe(true);
  expect(changesOf(first as SyncJson)).toBeGreaterThan(0);
  if (second) {
    expect(second.ok).toBe(true);
    expect(Date.parse(second.startedAt)).toBeGreaterThanOrEqual(
      Date.parse(first?.finishedAt ?? ''),
    );
    expect(changesOf(second)).toBe(0);
  }
  figures.changesApplied += changesOf(first as SyncJson);
  return runs.filter((run) => run.code === 3).length;
}

describe('two meter-sync processes started together on one target', () => {
  it('never both apply: one syncs and the other exits 3 with the lock message; the target ends equal to the source', async () => {
    let lockedOut = 0;
    for (let repeat = 0; repeat < 3; repeat++) {
      await changeSource();
      const runs = await Promise.all([
        syncCommand(`race-a-${round}`, false),
        syncCommand(`race-b-${round}`, false),
      ]);
      lockedOut += expectOneAppliedAtATime(runs, false);
      figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
      figures.rounds++;
    }
    figures.lockedOut += lockedOut;
    report('concurrent-syncs, unforced races', { repeats: 3, lockedOut });
  });

  it('with the first one held mid-run, the second exits 3 at once, and the first then completes', async () => {
    await changeSource();
    // Whichever process takes the sync lock first parks on the device table.
    const gate = new pg.Client({ connectionString: targetUrl });
    await gate.connect();
    let runs: CliRun[];
    try {
      await gate.query('BEGIN; LOCK TABLE device IN ACCESS EXCLUSIVE MODE');
      const a = syncCommand(`gated-a-${round}`, false);
      const b = syncCommand(`gated-b-${round}`, false);
      const loser = await Promise.race([a, b]);
      expect(loser.code).toBe(3);
      expect(loser.stderr).toMatch(LOCKED_MESSAGE);
      await gate.query('ROLLBACK');
      runs = await Promise.all([a, b]);
    } finally {
      await gate.end();
    }
    expect(runs.map((run) => run.code).sort()).toEqual([0, 3]);
    figures.lockedOut += expectOneAppliedAtATime(runs, false);
    figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
    figures.rounds++;
  });

  it('with --wait, both exit 0 and the second runs only after the first has finished', async () => {
    for (const gated of [true, false]) {
      await changeSource();
      const gate = new pg.Client({ connectionString: targetUrl });
      await gate.connect();
      let runs: CliRun[];
      try {
        if (gated) await gate.query('BEGIN; LOCK TABLE device IN ACCESS EXCLUSIVE MODE');
        const names = [`wait-a-${round}`, `wait-b-${round}`];
        const started = names.map((name) => syncCommand(name, true));
        if (gated) {
          // One parks on the device table, the other on the sync lock (an advisory lock).
          await waitFor(
            'one run on the table lock and one on the sync lock',
            async () =>
              (
                await Promise.all(names.map((name) => sessionsOf(cluster.admin, name, 'target')))
              ).flatMap((sessions) => sessions.filter((s) => s.waitEventType === 'Lock')),
            (waiting) => waiting.length === 2,
            30_000,
          );
          await gate.query('ROLLBACK');
        }
        runs = await Promise.all(started);
      } finally {
        await gate.end();
      }
      expect(runs.map((run) => run.code)).toEqual([0, 0]);
      expectOneAppliedAtATime(runs, true);
      figures.waited++;
      figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
      figures.rounds++;
    }
  });
});
