import { parse as parseArrayLiteral } from 'postgres-array';
import { keyOrders } from '../../diff/merge.js';
import type { AnyEntity } from '../../entity/types.js';
import { DatabaseError, messageOf, sqlState } from '../../errors.js';
import { type ParentTenant, parentTenants, standingOf } from '../parent-scope.js';
import { textHash } from '../text-hash.js';
import type {
  ParentReference,
  ReadRequest,
  Scope,
  SourceDatabase,
  SourceSnapshot,
  TextKey,
  TextRow,
} from '../types.js';
import { type Capabilities, detectCapabilities } from './capabilities.js';
import { CLOCK, type Clock, existingTables, lockTables, trackChanges } from './changes.js';
import { copyOutByteas, copyOutBytes, copyOutRows, supportsCopy } from './copy.js';
import { cursorRows, FETCH_ROWS } from './cursor.js';
import { emulatedRows, emulatedText, orderedKeyHashes } from './emulated.js';
import { databaseError, sourceError } from './errors.js';
import { packedKeyBits } from './packed-key.js';
import { tenantParameter } from './params.js';
import { onConnectionLost, type PgClient, type PgPool, rowValues } from './pool.js';
import {
  danglingRowsStatement,
  enforcedReferencesStatement,
  fingerprintsStatement,
  keySetStatement,
  nullKeyRowsStatement,
  type ReadShape,
  rowsByKeyStatement,
  rowsStatement,
  sourceSelect,
  sourceShape,
  TENANT_SETTING,
  tenantFromSetting,
  valuesStatement,
} from './reads.js';
import { pinSource } from './settings.js';
import {
  BEGIN_SNAPSHOT,
  COMMIT,
  releaseSavepoint,
  rollbackToSavepoint,
  type Statement,
  savepoint,
  selectFromQuery,
  selectStatement,
  setLocal,
  setLocalUtility,
} from './sql.js';
import { fingerprintsOf } from './sync-database.js';

const READ_SAVEPOINT = 'meter_sync_read';

/**
 * The source side of runs on a pg-compatible pool: each run opens one `REPEATABLE READ READ
 * ONLY` transaction, so every read of the run sees the same snapshot and PostgreSQL itself
 * refuses any write. Only SELECT, DECLARE/FETCH/CLOSE of cursors over SELECTs, SAVEPOINT and
 * transaction control are sent, each one statement, so a role with SELECT privilege is enough.
 */
export function createPgSource(pool: PgPool): SourceDatabase {
  return { open: (options) => openSourceSnapshot(pool, options) };
}

async function openSourceSnapshot(
  pool: PgPool,
  options: Parameters<SourceDatabase['open']>[0] = {},
): Promise<SourceSnapshot> {
  let capabilities: Capabilities;
  let client: PgClient;
  try {
    capabilities = await detectCapabilities(pool);
    client = await pool.connect();
  } catch (error) {
    throw databaseError(error, undefined, 'connecting to the source');
  }
  let connectionError: Error | undefined;
  const stopListening = onConnectionLost(client, (error) => {
    connectionError ??= error;
  });
  const real = capabilities.engine === 'postgresql';
  let clock: Clock | undefined;
  let untracked = real
    ? 'the source is older than PostgreSQL 13'
    : 'the source engine has no transaction ids (an emulator)';
  const giveUp = (error: unknown) => {
    stopListening();
    client.release(error instanceof Error ? error : true);
    return databaseError(error, undefined, 'starting the source snapshot');
  };
  const runTenant =
    options.tenantId === undefined ? undefined : String(tenantParameter(options.tenantId));
  /**
   * The tenant the transaction-local setting holds for COPY reads (`copyShapeOf`), set when the
   * snapshot starts or by a read that ended well; forgotten at any rollback, which may have
   * undone it.
   */
  let tenantSetting: string | undefined;
  let tables: string[];
  try {
    // Which tables to lock, asked before the snapshot exists: any SELECT would take it.
    tables =
      real && options.tables?.length
        ? parseTextArray((await client.query(existingTables(options.tables))).rows[0]?.tables)
        : [];
  } catch (error) {
    throw giveUp(error);
  }
  try {
    await options.notBefore;
  } catch (error) {
    stopListening();
    client.release();
    throw error;
  }
  try {
    await client.query({ text: BEGIN_SNAPSHOT });
    if (real) {
      // Utility statements only, until the snapshot is taken by the first SELECT after the locks.
      if (options.statementTimeoutMs !== undefined)
        await client.query({
          text: setLocalUtility('statement_timeout', options.statementTimeoutMs),
        });
      const locked =
        tables.length === 0
          ? undefined
          : await optional(client, { text: lockTables(tables), values: [] });
      // The run's tenant for COPY reads is set with the settings: a read then needs no statement first.
      await client.query(
        pinSource(
          capabilities.serverVersion,
          runTenant === undefined ? {} : { [TENANT_SETTING]: runTenant },
        ),
      );
      tenantSetting = runTenant;
      if ((capabilities.serverVersion ?? 0) >= 130000) {
        const read = await optional(client, CLOCK);
        if (read.rows) clock = read.rows[0] as Clock;
        else untracked = `the source role cannot read the transaction clock (${read.failure})`;
      }
      if (locked?.failure !== undefined) {
        clock = undefined;
        untracked = `the source tables could not be locked against TRUNCATE (${locked.failure})`;
      }
    }
  } catch (error) {
    throw giveUp(error);
  }

  /** The entity whose read lost the connection, if one did. */
  let lostWhile: string | undefined;
  let closed = false;

  const guarded = async (text: string) => {
    try {
      await client.query({ text });
    } catch (error) {
      connectionError = error instanceof Error ? error : new Error(String(error));
      throw error;
    }
  };

  const usable = (entity: AnyEntity, action: string) => {
    if (closed)
      throw databaseError(new Error('the source snapshot is closed'), entity.name, action);
    if (lostWhile !== undefined) {
      // A new connection would be a new snapshot: the run's reads could no longer agree.
      throw new DatabaseError(
        `${entity.name}: not read: the source connection was lost while reading ${lostWhile}, and the run's snapshot with it`,
        { entity: entity.name, cause: connectionError },
      );
    }
  };

  const rollBackRead = () => {
    tenantSetting = undefined;
    return guarded(rollbackToSavepoint(READ_SAVEPOINT)).catch(() => undefined);
  };

  /** A failed read rolls back to the savepoint, so the snapshot serves the next entity. */
  const failed = async (entity: AnyEntity, action: string, error: unknown) => {
    if (capabilities.transactional && connectionError === undefined) await rollBackRead();
    if (connectionError !== undefined) lostWhile ??= entity.name;
    return sourceError(error, entity, action);
  };

  const attempt = async <T>(entity: AnyEntity, action: string, work: () => Promise<T>) => {
    usable(entity, action);
    if (capabilities.transactional) await guarded(savepoint(READ_SAVEPOINT));
    try {
      const result = await work();
      if (capabilities.transactional) await guarded(releaseSavepoint(READ_SAVEPOINT));
      return result;
    } catch (error) {
      throw await failed(entity, action, error);
    }
  };

  // Read one statement at a time, and statements the user's query is part of over the
  // extended protocol, which refuses more than one statement.
  const select = (statement: Statement) =>
    client.query({ ...statement, queryMode: 'extended', rowMode: 'array' });

  /** How the source's columns are read as the target's types. */
  const described = new Map<
    string,
    Promise<{ types: Map<string, string>; castable: Set<string>; notNull: Set<string> }>
  >();
  const describedKey = (entity: AnyEntity, request: ReadRequest) =>
    `${entity.name}\u0000${JSON.stringify([...request.columns.values()].map((c) => c.type))}`;
  const describedOnce = (entity: AnyEntity, request: ReadRequest) => {
    const cacheKey = describedKey(entity, request);
    let found = described.get(cacheKey);
    if (!found) {
      found = describeSource(entity, request);
      described.set(cacheKey, found);
    }
    return found;
  };
  /** `describedOnce` outside a read: in a savepoint of its own unless read already. */
  const describedAlone = (entity: AnyEntity, request: ReadRequest) =>
    described.get(describedKey(entity, request)) ??
    attempt(entity, 'describing the source', () => describedOnce(entity, request));
  const shapeOf = async (entity: AnyEntity, request: ReadRequest): Promise<ReadShape> => {
    const { types, castable, notNull } = await describedOnce(entity, request);
    const since = request.changedSince;
    if (since !== undefined && !tracking)
      throw new Error(`${entity.name}: changed rows asked of a snapshot that cannot tell them`);
    return sourceShape(entity, request.columns, request.scope, types, castable, {
      changedWithin: since === undefined ? undefined : tracking?.within(since),
      notNull,
      placed: since !== undefined && (await tracking?.placed(entity)),
      changedAt: request.changedAt,
    });
  };
  /**
   * COPY takes no parameters: the tenant goes into a transaction-local setting, bound, and the
   * statement reads it back cast to the tenant column's type. Table sources only: a COPY is sent
   * over the simple protocol, which must never carry a user's query.
   */
  const copyShapeOf = async (entity: AnyEntity, request: ReadRequest): Promise<ReadShape> => {
    const { types, castable, notNull } = await describedOnce(entity, request);
    const tenantTypes = new Map<AnyEntity, string>();
    if (entity.tenantColumn !== undefined)
      tenantTypes.set(entity, types.get(entity.tenantColumn) || 'text');
    for (const { parent } of request.scope.parents ?? [])
      tenantTypes.set(parent, await tenantTypeOf(parent, request.scope));
    const tenant = String(tenantParameter(request.scope.tenantId));
    if (tenantTypes.size > 0 && tenant !== tenantSetting) {
      await client.query(setLocal(TENANT_SETTING, tenant));
      tenantSetting = tenant;
    }
    return sourceShape(entity, request.columns, request.scope, types, castable, {
      tenantExpression: (scoped) => tenantFromSetting(tenantTypes.get(scoped) ?? 'text'),
      notNull,
    });
  };
  /** COPY carries no user's query: only when every parent a read goes through is a table. */
  const copyable = (entity: AnyEntity, request: ReadRequest) =>
    entity.source.kind === 'table' &&
    (request.scope.parents ?? []).every(({ parent }) => parent.source.kind === 'table') &&
    supportsCopy(client);

  /** The type of a parent's tenant column on the source, so COPY compares it with its index. */
  const tenantTypes = new Map<string, Promise<string>>();
  const tenantTypeOf = (parent: AnyEntity, scope: Scope) => {
    let found = tenantTypes.get(parent.name);
    if (!found) {
      found = (async () => {
        const probe = await client.query({
          text: `SELECT * FROM (${sourceSelect(parent)}) AS probe LIMIT 0`,
          values: [tenantParameter(scope.tenantId)],
          queryMode: 'extended',
        });
        const oid = probe.fields?.find((field) => field.name === parent.tenantColumn)?.dataTypeID;
        const typed = await client.query({
          text: 'SELECT format_type($1::oid, NULL) AS type',
          values: [oid ?? 25],
        });
        return String(typed.rows[0]?.type ?? 'text');
      })();
      tenantTypes.set(parent.name, found);
    }
    return found;
  };

  const describeSource = async (entity: AnyEntity, request: ReadRequest) => {
    const probe = await client.query({
      text: `SELECT * FROM (${sourceSelect(entity)}) AS probe LIMIT 0`,
      values: entity.tenantColumn === undefined ? [] : [tenantParameter(request.scope.tenantId)],
      queryMode: 'extended',
    });
    const fields = probe.fields ?? [];
    const oids = fields.map((field) => field.dataTypeID);
    const targets = [...new Set([...request.columns.values()].map((column) => column.type))];
    // A column read straight from a table names it (and its number) in the row description.
    const tables = fields.map((field) => field.tableID ?? 0);
    const numbers = fields.map((field) => field.columnID ?? 0);
    const described = await client.query({
      text: `SELECT (SELECT array_agg(format_type(o, NULL) ORDER BY i) FROM unnest($1::oid[]) WITH ORDINALITY AS x(o, i)) AS source_types,
  (SELECT array_agg(t) FROM unnest($2::text[]) AS t WHERE to_regtype(t) IS NOT NULL) AS castable,
  (SELECT array_agg(COALESCE(a.attnotnull, false)::text ORDER BY y.i)
     FROM unnest($3::oid[], $4::int2[]) WITH ORDINALITY AS y(rel, num, i)
     LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = y.rel AND a.attnum = y.num AND y.num > 0) AS not_null`,
      values: [oids, targets, tables, numbers],
    });
    const row = described.rows[0] ?? {};
    const sourceTypes = parseTextArray(row.source_types);
    const notNull = parseTextArray(row.not_null);
    const types = new Map(fields.map((field, i) => [field.name, sourceTypes[i] ?? '']));
    return {
      types,
      castable: new Set(parseTextArray(row.castable)),
      // A query's outer join gives NULLs in a column its table holds NOT NULL: tables only.
      notNull: new Set(
        entity.source.kind === 'table'
          ? fields.filter((_, i) => notNull[i] === 'true').map((field) => field.name)
          : [],
      ),
    };
  };

  /** pg-mem: the rows in scope, or with `scope.parents` every row and where it stands. */
  const emulatedStanding = async (entity: AnyEntity, request: ReadRequest) => {
    const statement = sourceStatement(entity, request.scope);
    const result = await client.query(statement);
    const rows = emulatedRows(result.rows, entity.columnNames, request.columns);
    if (!request.scope.parents) return rows.map((row) => ({ row, standing: 'within' as const }));
    const parentTenant = await emulatedParentTenant(request);
    return rows.map((row) => ({
      row,
      standing: standingOf(
        request.scope,
        (column) => row[entity.columnNames.indexOf(column)] ?? null,
        parentTenant,
      ),
    }));
  };
  const emulatedRead = async (entity: AnyEntity, request: ReadRequest) =>
    (await emulatedStanding(entity, request))
      .filter((row) => row.standing === 'within')
      .map((row) => row.row);

  /** pg-mem: the source's parent rows, read whole, by key; a query's shows one tenant's. */
  const emulatedParentTenant = async (request: ReadRequest): Promise<ParentTenant> => {
    const tenant = String(request.scope.tenantId);
    const loaded = new Map<ParentReference, { key: string[]; tenant: string | null }[]>();
    for (const reference of request.scope.parents ?? []) {
      const { parent } = reference;
      const table = parent.source.kind === 'table';
      const result = await client.query(sourceStatement(parent, table ? {} : request.scope));
      loaded.set(
        reference,
        (result.rows as Record<string, unknown>[]).map((row) => ({
          key: parent.key.map(
            (column, i) =>
              emulatedText(row[column], request.columns.get(reference.columns[i] as string)) ?? '',
          ),
          tenant: table ? emulatedText(row[parent.tenantColumn as string], undefined) : tenant,
        })),
      );
    }
    const known = parentTenants((reference) => loaded.get(reference) ?? []);
    return (reference, key) => {
      const found = known(reference, key);
      return found === undefined && reference.parent.source.kind !== 'table' ? null : found;
    };
  };

  const tracking = clock
    ? trackChanges(
        clock,
        (entity, action, statement, read) =>
          attempt(entity, action, async () => read((await select(await statement())).rows)),
        shapeOf,
      )
    : undefined;

  const keyIndexes = (entity: AnyEntity) =>
    entity.key.map((column) => entity.columnNames.indexOf(column));

  return {
    features: {
      sqlHash: real && (capabilities.serverVersion ?? 0) >= 110000,
      rollback: capabilities.transactional,
    },
    changes: tracking ?? { unavailable: untracked },

    async keySet(entity, request) {
      if (!real || !copyable(entity, request)) return undefined;
      return attempt(entity, 'reading source keys', async () => {
        const shape = await copyShapeOf(entity, request);
        const { packedKey } = request;
        const statement = keySetStatement(
          shape,
          false,
          packedKey && { bits: packedKey, sourceTypes: true },
        );
        const copy = `COPY (${statement.text}) TO STDOUT (FORMAT binary)`;
        const [hashes = new Uint8Array()] = await copyOutByteas(client, copy);
        return { hashes };
      });
    },

    async packedKey(entity, request) {
      if (!real || !copyable(entity, request)) return undefined;
      const { types } = await describedAlone(entity, request);
      return packedKeyBits(entity.key, types, request.columns);
    },

    async prepare(entity, request) {
      if (real) await describedAlone(entity, request);
    },

    fingerprints(entity, request) {
      return attempt(entity, 'summarising source buckets', async () => {
        const shape = await shapeOf(entity, request);
        const statement = fingerprintsStatement(
          shape,
          request.buckets?.count ?? 1,
          (capabilities.serverVersion ?? 0) >= 140000,
          request.keysOnly,
        );
        const result = await client.query({ ...statement, queryMode: 'extended' });
        return fingerprintsOf(result.rows[0]);
      });
    },

    async *rows(entity, request) {
      const action = 'reading the source';
      usable(entity, action);
      if (!real) {
        const texts = await attempt(entity, action, () => emulatedRead(entity, request));
        const ordered = orderedKeyHashes(
          texts,
          keyIndexes(entity),
          keyOrders(entity, request.columns),
          (key, hash, values) => ({ key, hash, values }),
        );
        const taken = ordered.slice(0, request.sample ?? ordered.length);
        for (let i = 0; i < taken.length; i += FETCH_ROWS) yield taken.slice(i, i + FETCH_ROWS);
        return;
      }
      if (capabilities.transactional) await guarded(savepoint(READ_SAVEPOINT));
      let done = false;
      try {
        const values = request.values ?? true;
        // COPY takes no parameters: a read of changed rows goes through a cursor.
        const bulk = values && request.changedSince === undefined && copyable(entity, request);
        const shape = await (bulk ? copyShapeOf(entity, request) : shapeOf(entity, request));
        const statement = rowsStatement(shape, {
          hash: request.hash,
          values,
          buckets: request.buckets,
          keysOnly: request.keysOnly,
          keyFromValues: true,
          sample: request.sample,
        });
        const { keyAt } = statement;
        const width = keyAt ? 0 : entity.key.length;
        const offset = request.hash === 'sql' ? width + 1 : width;
        // Released as soon as the last rows are read: the consumer's next read need not wait.
        const release = async () => {
          done = true;
          if (capabilities.transactional) await guarded(releaseSavepoint(READ_SAVEPOINT));
        };
        const batches = bulk
          ? copyOutRows(client, `COPY (${statement.text}) TO STDOUT`)
          : cursorRows(client, statement, release);
        for await (const batch of batches) {
          yield batch.map((row) => {
            const values = row.slice(offset) as TextRow;
            return {
              key: (keyAt ? keyAt.map((at) => values[at]) : row.slice(0, width)) as string[],
              hash: request.hash === 'sql' ? String(row[width]) : textHash(values),
              values,
            };
          });
        }
        if (!done) await release();
      } catch (error) {
        done = true;
        throw await failed(entity, action, error);
      } finally {
        // The consumer stopped early: the savepoint goes with whatever the cursor left.
        if (!done && capabilities.transactional && connectionError === undefined)
          await rollBackRead();
      }
    },

    bulkText(entity, request) {
      if (!real || !copyable(entity, request)) return undefined;
      const action = 'reading the source';
      return (async function* () {
        usable(entity, action);
        if (capabilities.transactional) await guarded(savepoint(READ_SAVEPOINT));
        try {
          const shape = await copyShapeOf(entity, request);
          yield* copyOutBytes(client, `COPY (${valuesStatement(shape).text}) TO STDOUT`);
          if (capabilities.transactional) await guarded(releaseSavepoint(READ_SAVEPOINT));
        } catch (error) {
          throw await failed(entity, action, error);
        }
      })();
    },

    async rowsByKey(entity, request, keys) {
      if (keys.length === 0) return [];
      const action = 'reading changed source rows';
      usable(entity, action);
      if (!real) {
        const wanted = new Set(keys.map((key) => JSON.stringify(key)));
        const texts = await emulatedRead(entity, request);
        return orderedKeyHashes(
          texts,
          keyIndexes(entity),
          keyOrders(entity, request.columns),
          (key, hash, values) => ({ key, hash, values }),
        ).filter((row) => wanted.has(JSON.stringify(row.key)));
      }
      const width = entity.key.length;
      try {
        const result = await select(rowsByKeyStatement(await shapeOf(entity, request), keys));
        return result.rows.map((raw: unknown) => {
          const row = rowValues(raw) as string[];
          return {
            key: row.slice(0, width),
            hash: String(row[width]),
            values: row.slice(width + 1) as TextRow,
          };
        });
      } catch (error) {
        if (sqlState(error) === undefined)
          connectionError ??= error instanceof Error ? error : new Error(String(error));
        if (connectionError !== undefined) lostWhile ??= entity.name;
        throw sourceError(error, entity, action);
      }
    },

    nullKeyRows(entity, request, limit) {
      return attempt(entity, 'reading source rows with a NULL key', async () => {
        if (!real) {
          const texts = await emulatedRead(entity, request);
          return texts
            .filter((row) => keyIndexes(entity).some((index) => row[index] === null))
            .slice(0, limit);
        }
        const shape = await shapeOf(entity, request);
        // The table holds no NULL in a key column: a scan would find nothing.
        if (shape.keyNotNull) return [];
        const result = await select(nullKeyRowsStatement(shape, limit));
        return result.rows.map(rowValues) as TextRow[];
      });
    },

    danglingRows(entity, request, limit) {
      return attempt(entity, 'counting source rows whose parent is missing', async () => {
        const parents = request.scope.parents ?? [];
        const keyIndexes = entity.key.map((column) => entity.columnNames.indexOf(column));
        if (!real) {
          const dangling = (await emulatedStanding(entity, request)).filter(
            ({ row, standing }) =>
              standing === 'dangling' && keyIndexes.every((index) => row[index] !== null),
          );
          const parentTenant = await emulatedParentTenant(request);
          const missing = parents.filter((reference) =>
            dangling.some(({ row }) => {
              const key = reference.columns.map((c) => row[entity.columnNames.indexOf(c)] ?? null);
              return !key.includes(null) && parentTenant(reference, key as string[]) === undefined;
            }),
          );
          return {
            count: dangling.length,
            keys: dangling
              .slice(0, limit)
              .map(({ row }) => keyIndexes.map((i) => row[i] as string)),
            parents: missing.map((reference) => reference.parent.name),
          };
        }
        // A foreign key on the source settles it without reading a row: the common case, and a
        // scan of the whole child table on every tenant's run otherwise.
        const enforcedBy = enforcedReferencesStatement(entity, parents);
        const checks = enforcedBy ? rowValues((await select(enforcedBy)).rows[0]) : [];
        const enforced = new Set(parents.filter((_, i) => checks[i] === true || checks[i] === 't'));
        if (
          parents.every(
            (reference) => enforced.has(reference) || reference.parent.source.kind !== 'table',
          )
        )
          return { count: 0, keys: [], parents: [] };
        const statement = danglingRowsStatement(
          await shapeOf(entity, request),
          parents,
          limit,
          enforced,
        );
        const result = await select(statement);
        const rows = (result.rows as unknown[]).map(rowValues);
        const first = rows[0];
        return {
          count: first === undefined ? 0 : Number(first[0]),
          keys: rows.map((row) => row.slice(1 + parents.length) as TextKey),
          parents: parents
            .filter((_, i) => first?.[1 + i] === true || first?.[1 + i] === 't')
            .map((reference) => reference.parent.name),
        };
      });
    },

    async close() {
      if (closed) return;
      closed = true;
      if (connectionError === undefined) {
        // Read-only: COMMIT and ROLLBACK are the same; COMMIT also ends an aborted transaction.
        await guarded(COMMIT).catch(() => undefined);
      }
      stopListening();
      client.release(connectionError);
    },
  };
}

/**
 * Runs a statement in a savepoint: its result, or, where it failed, the failure's message with
 * the transaction as it was before it.
 */
async function optional(
  client: PgClient,
  statement: Statement,
): Promise<{ rows: unknown[]; failure?: undefined } | { rows?: undefined; failure: string }> {
  await client.query({ text: savepoint(OPTIONAL_SAVEPOINT) });
  try {
    const result = await client.query(statement);
    await client.query({ text: releaseSavepoint(OPTIONAL_SAVEPOINT) });
    return { rows: result.rows };
  } catch (error) {
    await client.query({ text: rollbackToSavepoint(OPTIONAL_SAVEPOINT) });
    return { failure: messageOf(error) };
  }
}

const OPTIONAL_SAVEPOINT = 'meter_sync_optional';

/** A text[] as node-postgres or another driver returns it: an array, or its literal. */
function parseTextArray(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return parseArrayLiteral(value);
  return [];
}

/** The SELECT that reads an entity on the source, with target column names. */
export function sourceStatement(entity: AnyEntity, scope: Scope): Statement {
  const tenant =
    entity.tenantColumn !== undefined && scope.tenantId !== undefined
      ? tenantParameter(scope.tenantId)
      : undefined;
  const source = entity.source;
  if (source.kind === 'query') return selectFromQuery(source.query, entity.columnNames, tenant);
  const remote = (column: string) => source.columns[column] ?? column;
  return selectStatement(
    source.table,
    entity.columnNames.map((column: string) => ({ name: remote(column), as: column })),
    tenant === undefined || entity.tenantColumn === undefined
      ? undefined
      : { column: remote(entity.tenantColumn), value: tenant },
  );
}
