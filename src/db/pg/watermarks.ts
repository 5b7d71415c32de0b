/**
 * Where each entity's watermark is kept in the sync database: one row per entity, scope (the
 * tenant) and source, written in the entity's own transaction, so it never claims changes that
 * did not commit.
 */
import type { AnyEntity } from '../../entity/types.js';
import type { Watermark } from '../types.js';
import type { Statement } from './sql.js';

export const WATERMARK_TABLE = 'meter_sync_watermark';

/** The table, idempotently: `syncSchemaSql` and `meter-sync init` create it, and so does a run. */
export const WATERMARK_TABLE_SQL = `CREATE TABLE IF NOT EXISTS "${WATERMARK_TABLE}" (
  "entity" text NOT NULL,
  "scope" text NOT NULL,
  "origin" text NOT NULL,
  "position" text NOT NULL,
  "fingerprint" text NOT NULL,
  "verified_at" timestamptz NOT NULL,
  "updated_at" timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY ("entity", "scope", "origin")
);`;

const table = `to_regclass('"${WATERMARK_TABLE}"')`;

/**
 * Whether the table exists, and whether this role may read and replace its rows (each
 * privilege asked apart: given several, `has_table_privilege` says whether any is held).
 */
export const WATERMARK_TABLE_EXISTS: Statement = {
  text: `SELECT ${table} IS NOT NULL AS present, coalesce(${['SELECT', 'INSERT', 'DELETE']
    .map((privilege) => `has_table_privilege(${table}, '${privilege}')`)
    .join(' AND ')}, false) AS usable`,
  values: [],
};

export function readWatermarks(entity: AnyEntity, scope: string): Statement {
  return {
    text: `SELECT "origin", "position", "fingerprint", (extract(epoch FROM "verified_at") * 1000)::bigint::text AS verified_ms
FROM "${WATERMARK_TABLE}" WHERE "entity" = $1 AND "scope" = $2`,
    values: [entity.name, scope],
  };
}

export function watermarkOf(row: Readonly<Record<string, unknown>>): Watermark {
  return {
    origin: String(row.origin),
    position: String(row.position),
    fingerprint: String(row.fingerprint),
    verifiedAt: new Date(Number(row.verified_ms)),
  };
}

/** Replaces the entity's watermarks for the scope with `watermark`, or removes them. */
export function saveWatermark(
  entity: AnyEntity,
  scope: string,
  watermark: Watermark | undefined,
): Statement[] {
  if (!watermark)
    return [
      {
        text: `DELETE FROM "${WATERMARK_TABLE}" WHERE "entity" = $1 AND "scope" = $2`,
        values: [entity.name, scope],
      },
    ];
  return [
    {
      text: `DELETE FROM "${WATERMARK_TABLE}" WHERE "entity" = $1 AND "scope" = $2 AND "origin" <> $3`,
      values: [entity.name, scope, watermark.origin],
    },
    {
      text: `INSERT INTO "${WATERMARK_TABLE}" ("entity", "scope", "origin", "position", "fingerprint", "verified_at", "updated_at")
VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000), now())
ON CONFLICT ("entity", "scope", "origin") DO UPDATE SET "position" = EXCLUDED."position",
  "fingerprint" = EXCLUDED."fingerprint", "verified_at" = EXCLUDED."verified_at", "updated_at" = EXCLUDED."updated_at"`,
      values: [
        entity.name,
        scope,
        watermark.origin,
        watermark.position,
        watermark.fingerprint,
        String(watermark.verifiedAt.getTime()),
      ],
    },
  ];
}
