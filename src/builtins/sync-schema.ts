import { syncLockTableSql } from '../db/pg/sync-lock.js';

/**
 * The sync database's tables for the built-in entities, as idempotent statements. Run it once
 * when setting up a sync database (`meter-sync init` does).
 *
 * Foreign keys mirror the source's; the engine orders writes so they always hold. Columns of
 * these tables that no definition lists (such as `device_register_id`) belong to the sync
 * database and are never written by a sync. \`meter_sync_watermark\` keeps where each entity's last
 * sync left off, so the next one reads only what changed since.
 * database and are never written by a sync. `meter_sync_lock` holds the sync lock's row.
 */
import { WATERMARK_TABLE_SQL } from '../db/pg/watermarks.js';

export const syncSchemaSql = `
CREATE TABLE IF NOT EXISTS "device" (
  "device_id" bigint PRIMARY KEY,
  "manufacturer" text,
  "model_number" text,
  "description" text,
  "type" text,
  "active" boolean
);

CREATE TABLE IF NOT EXISTS "meter" (
  "meter_id" bigint NOT NULL,
  "meter_element_id" bigint NOT NULL,
  "tenant_id" bigint NOT NULL,
  "name" text,
  "element" text,
  "device_id" bigint REFERENCES "device" ("device_id"),
  "ip" text,
  "port" integer,
  "active" boolean,
  PRIMARY KEY ("meter_id", "meter_element_id")
);
CREATE INDEX IF NOT EXISTS "meter_tenant_id_idx" ON "meter" ("tenant_id");
CREATE INDEX IF NOT EXISTS "meter_device_id_idx" ON "meter" ("device_id");

CREATE TABLE IF NOT EXISTS "register" (
  "register_id" bigint PRIMARY KEY,
  "tenant_id" bigint NOT NULL,
  "name" text,
  "register" integer,
  "unit" text,
  "field_name" text
);
CREATE INDEX IF NOT EXISTS "register_tenant_id_idx" ON "register" ("tenant_id");

CREATE TABLE IF NOT EXISTS "device_register" (
  "device_register_id" serial PRIMARY KEY,
  "device_id" bigint NOT NULL REFERENCES "device" ("device_id"),
  "register_id" bigint NOT NULL REFERENCES "register" ("register_id"),
  UNIQUE ("device_id", "register_id")
);
CREATE INDEX IF NOT EXISTS "device_register_register_id_idx" ON "device_register" ("register_id");

${WATERMARK_TABLE_SQL}
${syncLockTableSql}
`.trim();
