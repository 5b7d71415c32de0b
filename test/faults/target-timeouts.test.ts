import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseError, performSync } from '../../src/index.js';
import {
  createBuiltInPair,
  expectTargetEqualsSource,
  targetContents,
} from './support/built-ins.js';
import {
  type Cluster,
  idleInTransaction,
  sessionsOf,
  startCluster,
  waitFor,
} from './support/cluster.js';
import { report } from './support/figures.js';

const TENANT = 1;
/** Slack for the run's own work on top of a timeout: the bound on how long a failure may take. */
const SLACK_MS = 2_000;

let cluster: Cluster;
let round = 0;
const figures = {
  tableLocks: 0,
  rowLocks: 0,
  slowStatements: 0,
  rowsChecked: 0,
  failures: [] as string[],
};

beforeAll(async () => {
  cluster = await startCluster();
});

afterAll(async () => {
  report('target-timeouts', figures);
  await cluster?.stop();
});

/** A pair synced once, then a change on every source table. */
async function syncedPairWithChanges() {
  round++;
  const names = { source: `source_${round}`, target: `target_${round}` };
  const { sourceUrl, targetUrl } = await createBuiltInPair(cluster, names);
  const source = cluster.pool(sourceUrl);
  const target = cluster.pool(targetUrl);
  expect((await performSync({ source, target, tenantId: TENANT })).ok).toBe(true);
  await source.query(`
    UPDATE device SET description = 'Rewired' WHERE device_id = 2;
    UPDATE meter SET port = 503 WHERE meter_id = 12;
    UPDATE register SET unit = 'MWh' WHERE register_id = 101;
    INSERT INTO register (register_id, tenant_id, name, register, unit) VALUES (105, 1, 'New', 4000, 'kvarh');
    INSERT INTO device_register (device_id, register_id) VALUES (2, 101);`);
  return { source, target, targetUrl, names };
}

/** A session of its own on the target, inside a transaction, for holding locks. */
async function holder(url: string) {
  const client = new pg.Client({ connectionString: url, application_name: 'lock-holder' });
  await client.connect();
  await client.query('BEGIN');
  return client;
}

describe('a target that makes an entity wait', () => {
  it('fails the entities blocked by a table lock or a row lock within lockTimeoutMs, and the others go on', async () => {
    const { source, target, targetUrl, names } = await syncedPairWithChanges();
    const before = await targetContents(target);
    const lockTimeoutMs = 400;
    const tableLock = await holder(targetUrl);
    const rowLock = await holder(targetUrl);
    try {
      await tableLock.query('LOCK TABLE meter IN ACCESS EXCLUSIVE MODE');
      figures.tableLocks++;
      // The row the run must update, held as a local application would while editing it.
      await rowLock.query('SELECT * FROM register WHERE register_id = 101 FOR NO KEY UPDATE');
      figures.rowLocks++;

      const result = await performSync({ source, target, tenantId: TENANT, lockTimeoutMs });

      for (const entity of ['meter', 'register'] as const) {
        const outcome = result.entities[entity];
        expect(outcome.status).toBe('failed');
        expect(outcome.error).toBeInstanceOf(DatabaseError);
        expect((outcome.error as DatabaseError).code).toBe('55P03');
        expect(outcome.error?.message).toMatch(
          new RegExp(`^${entity}: .*canceling statement due to lock timeout \\[SQLSTATE 55P03\\]`),
        );
        expect(outcome.durationMs).toBeLessThan(lockTimeoutMs + SLACK_MS);
        figures.failures.push(outcome.error?.message ?? '');
      }
      expect(result.entities.device).toMatchObject({ status: 'ok', updated: 1 });
      // The junction row's foreign key check needs only a key-share lock on register 101.
      expect(result.entities.device_register).toMatchObject({ status: 'ok', inserted: 1 });
      expect(await sessionsOf(cluster.admin, 'lock-holder', names.target)).toHaveLength(2);
    } finally {
      await Promise.all([tableLock.end(), rowLock.end()]);
    }
    // Read once the table lock is gone (it blocks reads too).
    const after = await targetContents(target);
    expect(after.meter).toEqual(before.meter);
    expect(after.register).toEqual(before.register);
    expect(after.device).not.toEqual(before.device);
    await waitFor(
      'the lock holders to go',
      () => sessionsOf(cluster.admin, 'lock-holder'),
      (sessions) => sessions.length === 0,
    );
    expect(await idleInTransaction(cluster.admin, names.target)).toBe(0);

    const again = await performSync({ source, target, tenantId: TENANT, lockTimeoutMs });
    expect(again.ok).toBe(true);
    figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
  });

  it('fails an entity whose write runs past statementTimeoutMs, and the others go on', async () => {
    const { source, target } = await syncedPairWithChanges();
    const before = await targetContents(target);
    const statementTimeoutMs = 700;
    // A local trigger that makes every register update take seconds.
    await target.query(`
      CREATE FUNCTION slow_register() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
      CREATE TRIGGER slow_register BEFORE UPDATE ON register FOR EACH ROW EXECUTE FUNCTION slow_register();`);
    figures.slowStatements++;

    const result = await performSync({ source, target, tenantId: TENANT, statementTimeoutMs });

    const register = result.entities.register;
    expect(register.status).toBe('failed');
    expect((register.error as DatabaseError).code).toBe('57014');
    expect(register.error?.message).toMatch(
      /^register: .*canceling statement due to statement timeout \[SQLSTATE 57014\]/,
    );
    expect(register.durationMs).toBeLessThan(statementTimeoutMs + SLACK_MS);
    figures.failures.push(register.error?.message ?? '');
    expect(result.entities.device).toMatchObject({ status: 'ok', updated: 1 });
    expect(result.entities.meter).toMatchObject({ status: 'ok', updated: 3 });
    expect(result.entities.device_register.status).toBe('ok');
    expect((await targetContents(target)).register).toEqual(before.register);

    await target.query('DROP TRIGGER slow_register ON register');
    const again = await performSync({ source, target, tenantId: TENANT, statementTimeoutMs });
    expect(again.ok).toBe(true);
    figures.rowsChecked += await expectTargetEqualsSource(source, target, TENANT);
  });
});
