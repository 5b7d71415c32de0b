/**
 * Change tracking on a PostgreSQL source by `xmin`, the transaction that wrote each row version,
 * which a role with SELECT privilege can read.
 *
 * - The watermark is the xmin of the run's snapshot (`pg_snapshot_xmin(pg_current_snapshot())`),
 *   as a 64-bit xid8: every transaction the snapshot does not see, including those in progress
 *   when it was taken and committed later, has an xid at or after it.
 * - A later snapshot reads the rows changed since with `age(xmin)::oid <= D::oid`, where D is the
 *   distance from the watermark to the xid `age()` counts from, computed here in 64 bits. It is
 *   exact while D stays below 2^31 (a row written after the watermark is younger than D); older
 *   frozen rows may come along and are compared like any other.
 * - The origin (system identifier, timeline, database oid) and each table's identity (its oid,
 *   partitions, the columns read, enum labels) change whenever rows can change without a new row
 *   version, or the history the watermark counts in is another one.
 */
import type { AnyEntity, TableName } from '../../entity/types.js';
import type { Census, ChangeTracking, ReadRequest } from '../types.js';
import { rowValues } from './pool.js';
import { censusStatement, type ReadShape } from './reads.js';
import { quoteTable, type Statement } from './sql.js';

/**
 * Beyond this distance from the watermark (a quarter of the 2^31 that `age()` can count) the
 * run compares every row and takes a new watermark; half of it, and a run moves the watermark on
 * even when nothing changed.
 */
export const SAFE_DISTANCE = 2n ** 29n;

/** Where the snapshot stands, read in it by its first statement. */
export const CLOCK: Statement = {
  text: `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
  (pg_snapshot_xmax(pg_current_snapshot())::text::numeric + age(pg_snapshot_xmax(pg_current_snapshot())::xid))::text AS now,
  (SELECT system_identifier FROM pg_control_system())::text AS system,
  (CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END)::text AS timeline,
  (SELECT oid FROM pg_database WHERE datname = current_database())::text AS database`,
  values: [],
};

/** The tables of `tables` that exist, as `quoteTable` writes them: the ones LOCK TABLE can take. */
export function existingTables(tables: readonly TableName[]): Statement {
  return {
    text: 'SELECT coalesce(array_agg(t), ARRAY[]::text[]) AS tables FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL',
    values: [[...new Set(tables.map(quoteTable))]],
  };
}

/** `LOCK TABLE … IN ACCESS SHARE MODE`: what every SELECT takes, taken before the snapshot. */
export function lockTables(quoted: readonly string[]): string {
  return `LOCK TABLE ${quoted.join(', ')} IN ACCESS SHARE MODE`;
}

/**
 * What must hold for rows to change only with new row versions: the relation (a renamed or
 * swapped table has another oid), its partitions, the columns read (a column dropped and added
 * again has another number), and the labels of enums among their types (RENAME VALUE).
 */
export function tableIdentityStatement(table: TableName, columns: readonly string[]): Statement {
  return {
    text: `SELECT c.relkind::text AS kind, concat_ws('/', c.oid,
  (SELECT string_agg(p.relid::oid::text, ',' ORDER BY p.relid::oid) FROM pg_partition_tree(c.oid) AS p WHERE p.relid::oid <> c.oid),
  (SELECT string_agg(concat_ws(':', a.attname, a.attnum, a.atttypid, a.atttypmod, a.attcollation), ',' ORDER BY a.attnum)
     FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2::text[])),
  (SELECT string_agg(concat_ws(':', e.enumtypid, e.enumsortorder, e.enumlabel), ',' ORDER BY e.enumtypid, e.enumsortorder)
     FROM pg_enum AS e WHERE e.enumtypid IN (
       SELECT unnest(ARRAY[ty.oid, ty.typelem, ty.typbasetype]) FROM pg_attribute AS a JOIN pg_type AS ty ON ty.oid = a.atttypid
       WHERE a.attrelid = c.oid AND a.attname = ANY($2::text[])))) AS identity,
  c.reltuples::text AS rows
FROM pg_class AS c WHERE c.oid = to_regclass($1)`,
    values: [quoteTable(table), [...columns]],
  };
}

/** Relations whose row versions carry the xmin of their writer: tables, partitioned tables, matviews. */
const TRACKED_KINDS = new Set(['r', 'p', 'm']);
/** Of those, the ones whose rows a ctid names alone. */
const PLACED_KINDS = new Set(['r', 'm']);
/**
 * Above this many rows in the table (as last analyzed), the census does not collect where the
 * changed rows are: it holds tens of bytes a changed row while it counts, and a rewrite that
 * changes every row of a large table would have it hold them all on the Client System.
 */
export const PLACES_MAX_ROWS = 3_000_000;

/** The clock's row, as CLOCK returns it. */
export interface Clock {
  readonly xmin: string;
  readonly now: string;
  readonly system: string;
  readonly timeline: string;
  readonly database: string;
}

/** The first row of a result, as its values. */
const firstRow = (rows: readonly unknown[]): unknown[] => rowValues(rows[0]);

/** Change tracking for one snapshot, and the distance `age(xmin)` is compared with. */
export interface PgChangeTracking extends ChangeTracking {
  /** How many xids back from the one `age()` counts from `watermark` is. */
  within(watermark: string): string;
  /** Whether the entity's table rows can be read again by ctid (`ReadShape.place`). */
  placed(entity: AnyEntity): Promise<boolean>;
}

/** Change tracking for one snapshot whose clock was read. */
export function trackChanges(
  clock: Clock,
  /** Runs a statement as a read of `entity`: its failure, the statement's making included, names both. */
  run: <T>(
    entity: AnyEntity,
    action: string,
    statement: () => Statement | Promise<Statement>,
    read: (rows: unknown[]) => T,
  ) => Promise<T>,
  shapeOf: (entity: AnyEntity, request: ReadRequest) => Promise<ReadShape>,
): PgChangeTracking {
  const now = BigInt(clock.now);
  const xmin = BigInt(clock.xmin);
  const identities = new Map<
    string,
    Promise<{ kind: string; identity: string; rows: number } | undefined>
  >();
  const readTableIdentity = async (entity: AnyEntity) => {
    if (entity.source.kind !== 'table') return undefined;
    const source = entity.source;
    const columns = entity.columnNames.map((column: string) => source.columns[column] ?? column);
    const [kind, identity, rows] = await run(
      entity,
      'reading the source table identity',
      () => tableIdentityStatement(source.table, columns),
      firstRow,
    );
    return TRACKED_KINDS.has(String(kind))
      ? { kind: String(kind), identity: String(identity), rows: Number(rows) }
      : undefined;
  };
  const identityOf = (entity: AnyEntity) => {
    // Asked again for a parent that entities are read through: its tables are locked for the
    // snapshot, so the answer stands.
    let found = identities.get(entity.name);
    if (!found) {
      found = readTableIdentity(entity);
      identities.set(entity.name, found);
      found.catch(() => identities.delete(entity.name));
    }
    return found;
  };
  return {
    origin: `${clock.system}:${clock.timeline}:${clock.database}`,
    watermark: clock.xmin,
    unreadableSince(watermark) {
      const since = BigInt(watermark);
      if (since > xmin)
        return `the source's transactions are behind the watermark (${watermark} > ${clock.xmin}): restored from a backup, another server, or an older standby`;
      if (now - since >= SAFE_DISTANCE * 2n)
        return `the watermark is ${now - since} transactions old, too close to the wraparound horizon to count from`;
      return undefined;
    },
    ageing: (watermark) => now - BigInt(watermark) >= SAFE_DISTANCE,
    within: (watermark) => (now - BigInt(watermark)).toString(),
    tableIdentity: async (entity) => (await identityOf(entity))?.identity,
    // A table's row versions stay where they are while the snapshot holds them; a partitioned
    // table's partitions number theirs alike.
    async placed(entity) {
      const table = await identityOf(entity);
      return table !== undefined && PLACED_KINDS.has(table.kind) && table.rows <= PLACES_MAX_ROWS;
    },
    async census(entity, request, since): Promise<Census> {
      const [rows, nullKeys, changed, live, places] = await run(
        entity,
        'counting source rows',
        async () =>
          censusStatement(
            await shapeOf(entity, { ...request, changedSince: since }),
            request.softDeleted,
            request.changedReadUpTo,
          ),
        firstRow,
      );
      return {
        rows: Number(rows ?? 0),
        nullKeys: Number(nullKeys ?? 0),
        changed: Number(changed ?? 0),
        live: live === null || live === undefined ? undefined : Number(live),
        changedAt: places === null || places === undefined ? undefined : String(places),
      };
    },
  };
}
