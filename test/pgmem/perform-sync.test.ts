import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  builtInEntities,
  ConfigurationError,
  col,
  createRegistry,
  defineEntity,
  type PgPool,
  performSync,
  SchemaError,
  syncSchemaSql,
} from '../../src/index.js';
import { clientSystemSchemaSql, seedClientSystem } from '../../src/sample/index.js';
import { builtInPair, memDatabase, recordingLogger } from '../support/pgmem.js';

type BuiltInName = (typeof builtInEntities)[number]['name'];

const counts = (result: Awaited<ReturnType<typeof performSync>>) =>
  Object.fromEntries(
    Object.entries(result.entities).map(([name, r]) => [
      name,
      [r.status, r.inserted, r.updated, r.deleted, r.skipped],
    ]),
  );

describe('performSync on pg-mem with the built-in entities', () => {
  it('copies a tenant into an empty sync database, then finds nothing to do', async () => {
    const { remote, local } = await builtInPair([1]);
    const first = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(first.ok).toBe(true);
    expect(counts(first)).toEqual({
      device: ['ok', 3, 0, 0, 0],
      meter: ['ok', 6, 0, 0, 0],
      register: ['ok', 4, 0, 0, 0],
      device_register: ['ok', 6, 0, 0, 0],
    });
    const second = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(counts(second)).toEqual({
      device: ['ok', 0, 0, 0, 0],
      meter: ['ok', 0, 0, 0, 0],
      register: ['ok', 0, 0, 0, 0],
      device_register: ['ok', 0, 0, 0, 0],
    });
    expect(second.entities.register.unchanged).toBe(4);
  });

  it('builds one meter row per element with the joined name', async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    const rows = local.db.public.many(
      'SELECT meter_id, meter_element_id, name, element, port FROM meter ORDER BY meter_element_id',
    );
    expect(rows).toHaveLength(6);
    expect(rows[0]).toEqual({
      meter_id: 11,
      meter_element_id: 1001,
      name: 'Main board 1-Phase A',
      element: 'A',
      port: 502,
    });
  });

  it('applies updates, inserts and deletes made on the remote', async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    remote.db.public.none(`
      UPDATE register SET unit = 'Wh' WHERE register_id = 101;
      INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES (105, 1, 'Frequency', 3110, 'Hz', 'frequency');
      DELETE FROM device_register WHERE register_id = 104;
      DELETE FROM register WHERE register_id = 104;`);
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(counts(result).register).toEqual(['ok', 1, 1, 1, 0]);
    const units = local.db.public.many(
      'SELECT register_id, unit FROM register ORDER BY register_id',
    );
    expect(units).toEqual([
      { register_id: 101, unit: 'Wh' },
      { register_id: 102, unit: 'kW' },
      { register_id: 103, unit: 'V' },
      { register_id: 105, unit: 'Hz' },
    ]);
  });

  it("never reads, updates or deletes another tenant's rows", async () => {
    const { remote, local } = await builtInPair([1, 2]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 2 });
    const before = local.db.public.many(
      'SELECT * FROM register WHERE tenant_id = 2 ORDER BY register_id',
    );
    remote.db.public.none(`DELETE FROM device_register; DELETE FROM register WHERE tenant_id = 2;
      UPDATE meter SET name = 'renamed' WHERE tenant_id = 2;`);
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(result.ok).toBe(true);
    expect(
      local.db.public.many('SELECT * FROM register WHERE tenant_id = 2 ORDER BY register_id'),
    ).toEqual(before);
    expect(
      local.db.public.many(
        "SELECT count(*) AS n FROM meter WHERE tenant_id = 2 AND name LIKE 'renamed%'",
      ),
    ).toEqual([{ n: 0 }]);
  });

  it("reads no junction row of another tenant's register, and warns of none", async () => {
    const { remote, local } = await builtInPair([1, 2]);
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      logger,
    });
    const junction = result.entities.device_register;
    expect(junction).toMatchObject({ status: 'ok', inserted: 6, skipped: 0, warnings: [] });
    expect(lines.filter((line) => line.level === 'warn')).toEqual([]);
    expect(
      local.db.public.many('SELECT count(*) AS n FROM device_register WHERE register_id >= 200'),
    ).toEqual([{ n: 0 }]);
  });

  it('skips junction rows whose register is not in the target, with one summarised warning', async () => {
    // No foreign key on the Client System: a junction row may name a register that is gone.
    const remote = memDatabase(
      clientSystemSchemaSql.replace('REFERENCES register (register_id)', ''),
    );
    await seedClientSystem(remote.pool, [1, 2]);
    const local = memDatabase(syncSchemaSql);
    // Register 101 is held by tenant 2 on the target, so tenant 1 cannot have it; register 999
    // exists nowhere on the source; register 201 is tenant 2's and none of this run's business.
    local.db.public.none(
      "INSERT INTO register (register_id, tenant_id, name) VALUES (101, 2, 'held by tenant 2')",
    );
    remote.db.public.none(
      'INSERT INTO device_register (device_id, register_id) VALUES (1, 999), (2, 999)',
    );
    const { lines, logger } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      logger,
    });
    const junction = result.entities.device_register;
    const heldRegister = local.db.public.many(
      'SELECT count(*) AS n FROM device_register WHERE register_id = 101',
    );
    expect(heldRegister).toEqual([{ n: 0 }]);
    // Two rows name register 101, two register 999: four orphans in one warning.
    expect(junction).toMatchObject({ status: 'ok', inserted: 4, skipped: 4 });
    expect(junction.warnings).toHaveLength(1);
    expect(junction.warnings[0]).toMatchObject({ code: 'orphaned-rows', count: 4 });
    expect(junction.warnings[0]?.sampleKeys).toEqual(
      expect.arrayContaining([
        { device_id: 1n, register_id: 999n },
        { device_id: 2n, register_id: 999n },
      ]),
    );
    expect(junction.warnings[0]?.message).toMatch(/whose register row is not in the target/);
    const warnings = lines.filter(
      (line) => line.level === 'warn' && line.data.entity === 'device_register',
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.data).toMatchObject({ count: 4 });
  });

  it("warns once per loop over tenants about a global junction's orphans, with the exact count", async () => {
    // Tenant 3 is on the Client System but not in the loop: its registers stay out.
    const { remote, local } = await builtInPair([1, 2, 3]);
    const loop = [1, 2];
    const [outside] = remote.db.public.many(`SELECT count(*)::int AS n FROM device_register
      WHERE register_id IN (SELECT register_id FROM register WHERE tenant_id = 3)`);
    expect(outside?.n).toBeGreaterThan(0);
    const orphanWarnings = (lines: ReturnType<typeof recordingLogger>['lines']) =>
      lines.filter((line) => line.level === 'warn' && line.data.code === 'orphaned-rows');

    // Every entity once per tenant: each run reads only its tenant's junction rows, so none
    // warns about the rows of tenant 3, which no run of the loop covers.
    const naive = recordingLogger();
    for (const tenantId of loop)
      await performSync({
        source: remote.pool,
        target: local.pool,
        tenantId,
        logger: naive.logger,
      });
    expect(orphanWarnings(naive.lines)).toHaveLength(0);

    // Global entities once, the tenant-scoped ones per tenant, the junction after them all.
    const { lines, logger } = recordingLogger();
    const sync = (only: BuiltInName[], tenantId?: number) =>
      performSync({ source: remote.pool, target: local.pool, tenantId, only, logger });
    await sync(['device']);
    for (const tenantId of loop) await sync(['meter', 'register'], tenantId);
    const junction = await sync(['device_register']);
    expect(orphanWarnings(lines)).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ count: outside?.n }) }),
    ]);
    expect(junction.entities.device_register.warnings).toEqual([
      expect.objectContaining({ code: 'orphaned-rows', count: outside?.n }),
    ]);
  });

  it('logs counts once per entity', async () => {
    const { remote, local } = await builtInPair([1]);
    const { lines, logger } = recordingLogger();
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1, logger });
    const synced = lines.filter((line) => line.message === 'entity synced');
    expect(synced.map((line) => line.data.entity)).toEqual([
      'device',
      'meter',
      'register',
      'device_register',
    ]);
    expect(synced[2]?.data).toMatchObject({ inserted: 4, updated: 0, deleted: 0, skipped: 0 });
  });

  it('computes the same counts in a dry run and writes nothing', async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    remote.db.public.none(`
      UPDATE device SET description = 'changed' WHERE device_id = 1;
      INSERT INTO register (register_id, tenant_id, name, register, unit, field_name) VALUES (105, 1, 'Frequency', 3110, 'Hz', 'frequency');
      INSERT INTO device_register (device_id, register_id) VALUES (1, 105);
      DELETE FROM device_register WHERE register_id = 102;
      DELETE FROM register WHERE register_id = 102;`);
    const snapshot = () =>
      ['device', 'meter', 'register', 'device_register'].map((t) =>
        local.db.public.many(`SELECT * FROM ${t}`),
      );
    const before = snapshot();
    const planned = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      dryRun: true,
    });
    expect(planned.dryRun).toBe(true);
    expect(snapshot()).toEqual(before);
    const applied = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(counts(planned)).toEqual(counts(applied));
    expect(counts(applied).device_register).toEqual(['ok', 1, 0, 1, 0]);
  });

  it('deletes junction rows before the register they reference', async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    // The register leaves the tenant: the junction rows still exist on the remote but must go
    // from the sync database together with the register (the local foreign key demands it).
    remote.db.public.none('UPDATE register SET tenant_id = 9 WHERE register_id = 101');
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(result.ok).toBe(true);
    expect(result.entities.register.deleted).toBe(1);
    const remaining = local.db.public.many(
      'SELECT count(*) AS n FROM device_register WHERE register_id = 101',
    );
    expect(remaining).toEqual([{ n: 0 }]);
    expect(result.entities.device_register.deleted).toBeGreaterThan(0);
    // Register 101's junction rows are tenant 9's now: not read, so not orphans of this run.
    expect(result.entities.device_register.skipped).toBe(0);
  });

  it('keeps a device that meters of another tenant still use, and says so', async () => {
    const { remote, local } = await builtInPair([1, 2]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    await performSync({ source: remote.pool, target: local.pool, tenantId: 2 });
    remote.db.public.none(`UPDATE meter SET device_id = NULL WHERE device_id = 2;
      DELETE FROM device_register WHERE device_id = 2; DELETE FROM device WHERE device_id = 2;`);
    const first = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(first.ok).toBe(true);
    expect(first.entities.device.warnings[0]).toMatchObject({
      code: 'kept-referenced-rows',
      count: 1,
    });
    expect(local.db.public.many('SELECT device_id FROM device WHERE device_id = 2')).toHaveLength(
      1,
    );
    const second = await performSync({ source: remote.pool, target: local.pool, tenantId: 2 });
    expect(second.entities.device.deleted).toBe(1);
    expect(local.db.public.many('SELECT device_id FROM device WHERE device_id = 2')).toHaveLength(
      0,
    );
  });

  it('reports a failed entity and still runs the next ones', async () => {
    const remote =
      memDatabase(`CREATE TABLE register (register_id int PRIMARY KEY, tenant_id int, name text, register int, unit text, field_name text);
      CREATE TABLE device (device_id int PRIMARY KEY, manufacturer text, model_number text, description text, type text, active boolean);
      INSERT INTO device VALUES (1, 'ABB', 'M4M', NULL, NULL, true);
      INSERT INTO register VALUES (1, 7, 'Energy', 2700, 'kWh', 'active_energy');`);
    const local = memDatabase(
      `CREATE TABLE register (register_id bigint PRIMARY KEY, tenant_id bigint, name text, register int, unit text, field_name text);`,
    );
    const { logger, lines } = recordingLogger();
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 7,
      only: ['device', 'register'],
      logger,
    });
    expect(result.ok).toBe(false);
    expect(result.entities.device.status).toBe('failed');
    expect(result.entities.device.error).toBeInstanceOf(SchemaError);
    expect(result.entities.device.error?.message).toMatch(
      /device: target table "device" does not exist/,
    );
    expect(result.entities.register).toMatchObject({ status: 'ok', inserted: 1 });
    expect(lines.some((line) => line.level === 'error' && line.data.entity === 'device')).toBe(
      true,
    );
  });

  it('rejects a run with tenant-scoped entities but no tenant before any I/O', async () => {
    let connects = 0;
    const pool: PgPool = {
      connect: async () => {
        connects++;
        throw new Error('must not connect');
      },
    };
    await expect(performSync({ source: pool, target: pool })).rejects.toThrow(ConfigurationError);
    await expect(performSync({ source: pool, target: pool })).rejects.toThrow(
      /tenantId is required: meter, register/,
    );
    expect(connects).toBe(0);
  });

  it('syncs global entities alone without a tenant', async () => {
    const { remote, local } = await builtInPair([1]);
    const result = await performSync({ source: remote.pool, target: local.pool, only: ['device'] });
    expect(counts(result)).toEqual({ device: ['ok', 3, 0, 0, 0] });
  });

  it('leaves local-only columns alone', async () => {
    const { remote, local } = await builtInPair([1]);
    await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    const ids = () =>
      local.db.public.many(
        'SELECT device_register_id, device_id, register_id FROM device_register ORDER BY 1',
      );
    const before = ids();
    remote.db.public.none(
      'DELETE FROM device_register; INSERT INTO device_register (device_id, register_id) SELECT device_id, register_id FROM (VALUES (1,101),(3,101),(2,102),(1,103),(3,103),(2,104)) v(device_id, register_id)',
    );
    const result = await performSync({ source: remote.pool, target: local.pool, tenantId: 1 });
    expect(result.entities.device_register).toMatchObject({ inserted: 0, updated: 0, deleted: 0 });
    expect(ids()).toEqual(before);
  });
});

describe('custom entities on pg-mem', () => {
  const site = defineEntity({
    name: 'site',
    table: 'site',
    columns: z.object({
      site_id: col.int(),
      tenant_id: col.int(),
      label: col.text(),
      active: col.boolean(),
    }),
    key: ['site_id'],
    tenantColumn: 'tenant_id',
    source: { table: 'customer_site', columns: { site_id: 'id', label: 'site_name' } },
    onMissing: { set: { active: false } },
  });

  it('reads renamed source columns and soft-deletes missing rows once', async () => {
    const remote =
      memDatabase(`CREATE TABLE customer_site (id int PRIMARY KEY, tenant_id int, site_name text, active boolean);
      INSERT INTO customer_site VALUES (1, 5, 'North', true), (2, 5, 'South', true), (3, 6, 'Other tenant', true);`);
    const local = memDatabase(
      'CREATE TABLE site (site_id int PRIMARY KEY, tenant_id int, label text, active boolean, note text);',
    );
    const options = { source: remote.pool, target: local.pool, tenantId: 5, entities: [site] };
    expect((await performSync(options)).entities.site).toMatchObject({ inserted: 2 });
    remote.db.public.none('DELETE FROM customer_site WHERE id = 2');
    expect((await performSync(options)).entities.site).toMatchObject({ deleted: 1, updated: 0 });
    expect(
      local.db.public.many('SELECT site_id, label, active FROM site ORDER BY site_id'),
    ).toEqual([
      { site_id: 1, label: 'North', active: true },
      { site_id: 2, label: 'South', active: false },
    ]);
    expect((await performSync(options)).entities.site).toMatchObject({
      inserted: 0,
      updated: 0,
      deleted: 0,
    });
    remote.db.public.none("INSERT INTO customer_site VALUES (2, 5, 'South', true)");
    expect((await performSync(options)).entities.site).toMatchObject({ updated: 1 });
  });

  it('runs next to the built-ins in one registry', async () => {
    const { remote, local } = await builtInPair([1]);
    remote.db.public.none(`CREATE TABLE customer_site (id int PRIMARY KEY, tenant_id int, site_name text, active boolean);
      INSERT INTO customer_site VALUES (1, 1, 'North', true);`);
    local.db.public.none(
      'CREATE TABLE site (site_id int PRIMARY KEY, tenant_id int, label text, active boolean);',
    );
    const registry = createRegistry([...builtInEntities, site]);
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 1,
      entities: registry,
    });
    expect(Object.keys(result.entities)).toEqual([
      'device',
      'meter',
      'register',
      'device_register',
      'site',
    ]);
    expect(result.entities.site.inserted).toBe(1);
  });

  it('fails an entity whose source rows break the schema, naming key and column', async () => {
    const remote =
      memDatabase(`CREATE TABLE customer_site (id int PRIMARY KEY, tenant_id int, site_name text, active boolean);
      INSERT INTO customer_site VALUES (1, 5, 'North', true), (2, 5, NULL, true);`);
    const local = memDatabase(
      'CREATE TABLE site (site_id int PRIMARY KEY, tenant_id int, label text, active boolean);',
    );
    const result = await performSync({
      source: remote.pool,
      target: local.pool,
      tenantId: 5,
      entities: [site],
    });
    expect(result.entities.site.status).toBe('failed');
    expect(result.entities.site.error?.message).toMatch(
      /site: source row \(site_id=2\) column "label"/,
    );
    expect(result.entities.site.error).toMatchObject({
      entity: 'site',
      column: 'label',
      key: { site_id: 2 },
    });
    expect(local.db.public.many('SELECT * FROM site')).toEqual([]);
  });
});
