import { builtInEntities, syncSchemaSql } from 'meter-sync';
import { createTableSql, describeTable } from '../../db/pg/catalog.js';
import type { PgClient } from '../../db/pg/pool.js';
import { SYNC_LOCK_TABLE, syncLockTableSql } from '../../db/pg/sync-lock.js';
import type { AnyEntity } from '../../entity/types.js';
import { messageOf, sqlState } from '../../errors.js';
import { checkOut, connectionHint, openPool } from '../connections.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { type Finding, sourceColumns, tableText, targetFindings } from '../inspect.js';
import type { Outcome } from '../outcome.js';
import type { Output } from '../output.js';
import type { Settings } from '../settings.js';
import { findingsTable } from './check.js';

/**
 * `meter-sync init`: creates the sync database's tables. The built-ins' come from
 * `syncSchemaSql`; a config's own entities get a table shaped on the source's catalog (types,
 * NOT NULL, the key as primary key). Existing tables are never altered: how they differ from
 * the definition and the source is reported instead. With `print`, shows the DDL only.
 */
export async function runInitCommand(
  settings: Settings,
  output: Output,
  options: { readonly print: boolean },
): Promise<Outcome> {
  const targetConnection = settings.connection('target');
  const selected = settings.only
    ? settings.registry.select(settings.only)
    : settings.registry.entities;
  const builtIns = new Set<AnyEntity>(builtInEntities);
  const withBuiltIns = selected.some((entity) => builtIns.has(entity));
  const custom = selected.filter((entity) => !builtIns.has(entity));

  const target = openPool(targetConnection);
  let source: ReturnType<typeof openPool> | undefined;
  const clients: PgClient[] = [];
  // The sync lock's table comes with the built-ins' DDL, and on its own without them.
  const statements: string[] = [withBuiltIns ? syncSchemaSql : syncLockTableSql];
  const created: string[] = withBuiltIns
    ? builtInEntities.filter((entity) => selected.includes(entity)).map((e) => e.table.name)
    : [];
  const existing: string[] = [];
  const findings: Finding[] = [];
  try {
    const targetClient = await checkOut(
      target,
      targetConnection,
      'sync database',
      'creating the sync tables',
    );
    clients.push(targetClient);
    let sourceClient: PgClient | undefined;
    for (const entity of custom) {
      if (!sourceClient) {
        const sourceConnection = settings.connection('source');
        source = openPool(sourceConnection);
        sourceClient = await checkOut(
          source,
          sourceConnection,
          'source',
          'connecting to the source',
        );
        clients.push(sourceClient);
      }
      const fromSource = await sourceColumns(sourceClient, entity, settings.tenantId);
      const exists = (await describeTable(targetClient, entity.table)) !== undefined;
      if (exists) {
        existing.push(tableText(entity.table));
        findings.push(...fromSource.findings);
        findings.push(...(await targetFindings(targetClient, entity, fromSource.columns)).findings);
        continue;
      }
      const columns = fromSource.columns;
      if (!columns || fromSource.findings.length > 0) {
        findings.push(...fromSource.findings);
        continue;
      }
      statements.push(
        createTableSql(
          entity.table,
          (entity.columnNames as string[]).map((name) => {
            const column = columns.get(name);
            return {
              name,
              type: column?.type ?? 'text',
              notNull: column?.notNull === true || (entity.key as string[]).includes(name),
            };
          }),
          entity.key,
        ),
      );
      created.push(tableText(entity.table));
    }

    if (!options.print && statements.length > 0) {
      try {
        await targetClient.query({ text: 'BEGIN' });
        for (const text of statements) await targetClient.query({ text });
        await targetClient.query({ text: 'COMMIT' });
      } catch (error) {
        await targetClient.query({ text: 'ROLLBACK' }).catch(() => undefined);
        throw new CliError(
          `creating the sync tables failed: ${messageOf(error)}; ${isConnectionFailure(error) ? connectionHint('sync database', { target: targetConnection }) : 'check that the role may create tables in the database'}`,
          ExitCode.usage,
          'DatabaseError',
        );
      }
    }
  } finally {
    for (const client of clients) client.release();
    await Promise.all([target.end(), source?.end()]).catch(() => undefined);
  }

  const errors = findings.filter((finding) => finding.level === 'error').length;
  if (!settings.json && !settings.quiet) {
    if (options.print) {
      output.print(statements.length > 0 ? statements.join('\n\n') : '-- nothing to create');
    } else {
      output.print(
        `sync database ready: ${targetConnection.display} has the tables ${[...created, ...existing, SYNC_LOCK_TABLE].join(', ')}`,
      );
    }
    if (existing.length > 0 && !options.print) {
      output.print(`left as they are: ${existing.join(', ')}`);
    }
    if (findings.length > 0) {
      output.print();
      for (const line of findingsTable(findings)) output.print(line);
    }
  }
  return {
    exitCode: errors === 0 ? ExitCode.ok : ExitCode.entityFailed,
    json: {
      created: options.print ? [] : created,
      ...(options.print ? { statements } : {}),
      existing,
      findings: findings.map((finding) => ({ ...finding, column: finding.column ?? null })),
    },
    ...(errors === 0
      ? {}
      : { error: `${errors} error${errors === 1 ? '' : 's'} in existing or source tables` }),
  };
}

/** No SQLSTATE (the network), or one of the classes a server answers a refused login with. */
export function isConnectionFailure(error: unknown): boolean {
  const code = sqlState(error);
  return code === undefined || /^(08|28|3D|57P0)/.test(code);
}
