import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  builtInEntities,
  DatabaseError,
  type PgPool,
  performSync,
  type SyncEvent,
} from '../../src/index.js';
import {
  createBuiltInPair,
  expectTargetEqualsSource,
  TABLES,
  targetContents,
} from './support/built-ins.js';
import { bulkReading, sourceSql } from './support/bulk-reading.js';
import {
  type Cluster,
  idleInTransaction,
  type Session,
  sessionsOf,
  startCluster,
  waitFor,
  withApplicationName,
} from './support/cluster.js';
import { report } from './support/figures.js';

const TENANT = 1;
const BULK_ROWS = 300_000;
const NOT_READ = (entity: string, lost: string) =>
  `${entity}: not read: the source connection was lost while reading ${lost}, and the run's snapshot with it`;

let cluster: Cluster;
let round = 0;
// A lost connection must surface as a failed entity, never as a rejection or an 'error' event
// nobody listens to (which would end an agent's process).
const unhandled: unknown[] = [];
const recordUnhandled = (reason: unknown) => unhandled.push(reason);
const faults = { terminatedBackends: 0, destroyedSockets: 0 };
let rowsChecked = 0;

beforeAll(async () => {
  cluster = await startCluster();
  process.on('unhandledRejection', recordUnhandled);
  process.on('uncaughtException', recordUnhandled);
});

afterAll(async () => {
  process.off('unhandledRejection', recordUnhandled);
  process.off('uncaughtException', recordUnhandled);
  report('source-connection-lost', { faultsInjected: faults, rowsChecked });
  await cluster?.stop();
});

/** A source and a target with the built-ins synced once, then changes on every source table. */
async function syncedPairWithChanges() {
  round++;
  const { sourceUrl, targetUrl } = await createBuiltInPair(cluster, {
    source: `source_${round}`,
    target: `target_${round}`,
  });
  const application = `lost-source-${round}`;
  const poolErrors: Error[] = [];
  const source = new pg.Pool({
    connectionString: withApplicationName(sourceUrl, application),
    max: 4,
  });
  source.on('error', (error) => poolErrors.push(error));
  const target = cluster.pool(withApplicationName(targetUrl, `lost-target-${round}`));
  const first = await performSync({ source, target, tenantId: TENANT });
  expect(first.ok).toBe(true);
  const admin = cluster.pool(sourceUrl, { max: 2 });
  await admin.query(`
    UPDATE device SET description = 'Rewired' WHERE device_id = 1;
    UPDATE meter SET ip = '10.9.9.9' WHERE meter_id = 11;
    UPDATE register SET name = 'Renamed' WHERE register_id = 101;
    INSERT INTO register (register_id, tenant_id, name, register, unit) VALUES (105, 1, 'New', 4000, 'kvarh');
    INSERT INTO device_register (device_id, register_id) VALUES (2, 101);
    DELETE FROM device_register WHERE device_id = 1 AND register_id = 103;`);
  return { sourceUrl, source, target, admin, application, poolErrors };
}

/** No client checked out or waited for, and the server sees exactly the pool's connections. */
async function expectNoLeakedClient(pool: pg.Pool, application: string, database: string) {
  expect(pool.waitingCount).toBe(0);
  expect(pool.idleCount).toBe(pool.totalCount);
  const sessions = await sessionsOf(cluster.admin, application, database);
  expect(sessions).toHaveLength(pool.totalCount);
  // Every pooled connection still works: none is a broken one handed back.
  const clients = await Promise.all(Array.from({ length: pool.totalCount }, () => pool.connect()));
  try {
    for (const client of clients)
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  } finally {
    for (const client of clients) client.release();
  }
}

describe('the source connection lost in the middle of a read', () => {
  beforeEach(() => {
    unhandled.length = 0;
  });
  afterEach(() => {
    expect(
      unhandled.map((error) => String(error)),
      'unhandled rejections and uncaught errors',
    ).toEqual([]);
  });

  it('terminated by the server while register is read: register fails, later entities are not read, their target rows stay, and nothing leaks', async () => {
    const { source, target, admin, application, poolErrors } = await syncedPairWithChanges();
    // Another tenant's registers, many and unindexed on the source: every statement of the run
    // about register scans them, so the backend is terminated while one of them is running,
    // not between statements. (A lock cannot park the read: the run locks its tables before
    // its snapshot, so a lock wait parks the opening instead.)
    await admin.query(`INSERT INTO register (register_id, tenant_id, name, register, unit)
      SELECT 1000000 + g, ${TENANT + 1}, 'Other tenant', g, 'kwh' FROM generate_series(1, 3000000) AS g;
      ANALYZE register`);
    const targetBefore = await targetContents(target);
    const events: SyncEvent[] = [];
    // One attempt: what a lost snapshot does to the run without retries (the fleet tests show
    // an entity retried on a new snapshot).
    const running = performSync({
      source,
      target,
      tenantId: TENANT,
      retry: false,
      onEvent: (event) => events.push(event),
    });
    const lastStarted = () => events.filter((event) => event.type === 'entity-start').at(-1);
    // Found and terminated in one statement, only while a statement of register's own is active.
    const terminated = await waitFor(
      'a statement of the run on register to be running',
      async () => {
        if (lastStarted()?.entity !== 'register') return [];
        const { rows } = await admin.query(
          `SELECT query, pg_terminate_backend(pid) AS done FROM pg_stat_activity
            WHERE application_name = $1 AND datname = $2 AND state = 'active'
              AND query ~ '"register"' AND query !~ 'device_register'`,
          [application, `source_${round}`],
        );
        return rows as { query: string; done: boolean }[];
      },
      (rows) => rows.length > 0,
      60_000,
      5,
    );
    expect(terminated).toHaveLength(1);
    expect(terminated[0]?.done).toBe(true);
    faults.terminatedBackends++;
    const result = await running;

    expect(result.ok).toBe(false);
    expect(result.entities.device.status).toBe('ok');
    expect(result.entities.meter.status).toBe('ok');
    expect(result.entities.meter.updated).toBe(3);
    const register = result.entities.register;
    expect(register.status).toBe('failed');
    expect(register.error).toBeInstanceOf(DatabaseError);
    expect(register.error?.message).toMatch(
      /^register: (reading|describing|summarising|counting) (the )?source.* failed: terminating connection due to administrator command \[SQLSTATE 57P01\]/,
    );
    expect(result.entities.device_register.status).toBe('failed');
    expect(result.entities.device_register.error?.message).toBe(
      NOT_READ('device_register', 'register'),
    );

    // Applied before the loss: device and meter. Untouched: the failed and the unread entity.
    const targetAfter = await targetContents(target);
    expect(targetAfter.register).toEqual(targetBefore.register);
    expect(targetAfter.device_register).toEqual(targetBefore.device_register);
    rowsChecked += await expectTargetEqualsSource(admin, target, TENANT, ['device', 'meter']);

    await expectNoLeakedClient(source, application, `source_${round}`);
    expect(await idleInTransaction(cluster.admin, `source_${round}`)).toBe(0);
    expect(await idleInTransaction(cluster.admin, `target_${round}`)).toBe(0);
    expect(poolErrors).toEqual([]);

    // The same pool serves the next run, which catches up.
    const second = await performSync({ source, target, tenantId: TENANT });
    expect(second.ok).toBe(true);
    expect(second.entities.register).toMatchObject({ inserted: 1, updated: 1 });
    expect(second.entities.device_register).toMatchObject({ inserted: 1, deleted: 1 });
    rowsChecked += await expectTargetEqualsSource(admin, target, TENANT);

    await source.end();
    await waitFor(
      'the source pool to close its connections',
      () => sessionsOf(cluster.admin, application),
      (sessions) => sessions.length === 0,
    );
  });

  it('socket closed by the client while a large entity streams into an empty table: that table stays empty, the built-ins are not read, and nothing leaks', async () => {
    const { source, target, admin, application, poolErrors } = await syncedPairWithChanges();
    await admin.query(sourceSql(BULK_ROWS));
    await target.query(
      `CREATE TABLE bulk_reading (reading_id bigint PRIMARY KEY, tenant_id int NOT NULL,
        register_id bigint NOT NULL, value numeric NOT NULL, quality text NOT NULL, read_at timestamptz NOT NULL)`,
    );
    const targetBefore = await targetContents(target);
    // The run's source connections, to pull the plug on the one that reads.
    const checkedOut: pg.PoolClient[] = [];
    const watchedSource: PgPool = {
      async connect() {
        const client = await source.connect();
        checkedOut.push(client);
        return client;
      },
    };
    const running = performSync({
      source: watchedSource,
      target,
      tenantId: TENANT,
      entities: [bulkReading, ...builtInEntities],
      retry: false,
    });
    // The rows are streaming: the source's cursor is being read and the target is taking them.
    const copying = (sessions: readonly Session[], start: string) =>
      sessions.some((session) => session.query.startsWith(start));
    await waitFor(
      'the bulk rows to be streaming on both sides',
      () =>
        Promise.all([
          sessionsOf(cluster.admin, application, `source_${round}`),
          sessionsOf(cluster.admin, `lost-target-${round}`, `target_${round}`),
        ]),
      ([onSource, onTarget]) =>
        (copying(onSource, 'COPY (SELECT') || copying(onSource, 'FETCH FORWARD')) &&
        ['COPY "bulk_reading"', 'COPY "meter_sync_stage', 'INSERT INTO "bulk_reading"'].some(
          (start) => copying(onTarget, start),
        ),
      15_000,
      5,
    );
    const reader = checkedOut.at(-1) as unknown as { connection: { stream: { destroy(): void } } };
    reader.connection.stream.destroy();
    faults.destroyedSockets++;
    const result = await running;

    expect(result.ok).toBe(false);
    const bulk = result.entities.bulk_reading;
    expect(bulk.status).toBe('failed');
    expect(bulk.error).toBeInstanceOf(DatabaseError);
    expect(bulk.error?.message).toMatch(/^bulk_reading: reading the source failed: /);
    for (const entity of TABLES) {
      expect(result.entities[entity].status).toBe('failed');
      expect(result.entities[entity].error?.message).toBe(NOT_READ(entity, 'bulk_reading'));
    }
    const { rows } = await target.query('SELECT count(*)::int AS n FROM bulk_reading');
    expect(rows[0].n).toBe(0);
    expect(await targetContents(target)).toEqual(targetBefore);

    await expectNoLeakedClient(source, application, `source_${round}`);
    expect(await idleInTransaction(cluster.admin, `source_${round}`)).toBe(0);
    expect(await idleInTransaction(cluster.admin, `target_${round}`)).toBe(0);
    expect(poolErrors).toEqual([]);

    const second = await performSync({
      source,
      target,
      tenantId: TENANT,
      entities: [bulkReading, ...builtInEntities],
    });
    expect(second.ok).toBe(true);
    expect(second.entities.bulk_reading.inserted).toBe(BULK_ROWS);
    rowsChecked += await expectTargetEqualsSource(admin, target, TENANT);
    rowsChecked += BULK_ROWS;

    await source.end();
    await waitFor(
      'the source pool to close its connections',
      () => sessionsOf(cluster.admin, application),
      (sessions) => sessions.length === 0,
    );
  });
});
