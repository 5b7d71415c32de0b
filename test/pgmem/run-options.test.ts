import { describe, expect, it } from 'vitest';
import { performSync, type SyncEvent } from '../../src/index.js';
import { builtInPair, recordingLogger } from '../support/pgmem.js';

describe('run options on pg-mem', () => {
  it('reports events in order: run, each entity with progress, run end', async () => {
    const { remote, local } = await builtInPair([1]);
    const events: SyncEvent[] = [];
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      onEvent: (e) => events.push(e),
    });
    expect(events[0]).toMatchObject({
      type: 'run-start',
      entities: ['device', 'meter', 'register', 'device_register'],
      tenantId: 1,
    });
    expect(events.at(-1)).toEqual({ type: 'run-end', result });
    const register = events
      .filter((e) => 'entity' in e && e.entity === 'register')
      .map((e) => (e.type === 'entity-progress' ? `${e.type}:${e.phase}:${e.rows}` : e.type));
    expect(register).toEqual([
      'entity-start',
      'entity-progress:reading:4',
      'entity-progress:comparing:4',
      'entity-progress:writing:4',
      'entity-end',
    ]);
    const end = events.find((e) => e.type === 'entity-end' && e.entity === 'register');
    expect(end).toMatchObject({ result: { inserted: 4 } });
  });

  it('survives a listener that throws, and logs it', async () => {
    const { remote, local } = await builtInPair([1]);
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      logger,
      onEvent: () => {
        throw new Error('listener bug');
      },
    });
    expect(result.ok).toBe(true);
    expect(
      lines.some((line) => line.level === 'warn' && line.message.includes('listener threw')),
    ).toBe(true);
  });

  it('lists the keys of the changes when asked', async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    remote.db.public.none(`UPDATE register SET unit = 'Wh' WHERE register_id = 101;
      DELETE FROM device_register WHERE register_id = 104; DELETE FROM register WHERE register_id = 104;
      INSERT INTO device (device_id, manufacturer) VALUES (9, 'Janitza');`);
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      dryRun: true,
      listChanges: true,
    });
    expect(result.entities.register.changes).toEqual({
      inserted: [],
      updated: [{ register_id: 101n }],
      deleted: [{ register_id: 104n }],
    });
    expect(result.entities.device.changes?.inserted).toEqual([{ device_id: 9n }]);
    expect(result.entities.device_register.changes?.deleted).toEqual([
      { device_id: 2n, register_id: 104n },
    ]);
    const plain = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(plain.entities.register.changes).toBeUndefined();
  });

  it("lists the keys of rows deleted with their parent among the child's deletes", async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    // The source still wires device 3 to register 103: after the cascade it is an orphan.
    remote.db.public.none(`ALTER TABLE device_register DROP CONSTRAINT device_register_register_id_fk;
      DELETE FROM register WHERE register_id = 103`);
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      listChanges: true,
    });
    expect(result.entities.register.changes?.deleted).toEqual([{ register_id: 103n }]);
    const wired = remote.db.public.many(
      'SELECT device_id FROM device_register WHERE register_id = 103',
    );
    expect(wired.length).toBeGreaterThan(0);
    expect(result.entities.device_register.changes?.deleted).toEqual(
      wired.map((row) => ({ device_id: BigInt(row.device_id), register_id: 103n })),
    );
    expect(result.entities.device_register.warnings[0]?.sampleKeys).toEqual(
      wired.map((row) => ({ device_id: BigInt(row.device_id), register_id: 103n })),
    );
  });
});
