import type { PgClient } from '../../db/pg/pool.js';
import { checkOut, openPool } from '../connections.js';
import { ExitCode } from '../exit-codes.js';
import { checkEntity, type Finding } from '../inspect.js';
import type { Outcome } from '../outcome.js';
import type { Output } from '../output.js';
import type { Settings } from '../settings.js';

/**
 * `meter-sync check`: reads both catalogs (and a few facts of the source's data) and reports
 * what would stop or spoil a sync, entity by entity. Writes nothing. Exit 0 without errors.
 */
export async function runCheckCommand(settings: Settings, output: Output): Promise<Outcome> {
  const sourceConnection = settings.connection('source');
  const targetConnection = settings.connection('target');
  const source = openPool(sourceConnection);
  const target = openPool(targetConnection);
  const clients: PgClient[] = [];
  try {
    const sourceClient = await checkOut(
      source,
      sourceConnection,
      'source',
      'connecting to the source',
    );
    clients.push(sourceClient);
    const targetClient = await checkOut(
      target,
      targetConnection,
      'sync database',
      'connecting to the sync database',
    );
    clients.push(targetClient);
    const entities = settings.only
      ? settings.registry.select(settings.only)
      : settings.registry.entities;
    const findings: Finding[] = [];
    for (const entity of entities) {
      findings.push(...(await checkEntity(sourceClient, targetClient, entity, settings.tenantId)));
    }
    const errors = findings.filter((finding) => finding.level === 'error').length;
    const warnings = findings.length - errors;
    const count = `${entities.length} entit${entities.length === 1 ? 'y' : 'ies'}`;
    const summary =
      findings.length === 0
        ? `check: no problems found in ${count}`
        : `check: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'} in ${count}`;
    if (!settings.json && !(settings.quiet && errors === 0)) {
      output.print(`check of ${sourceConnection.display} -> ${targetConnection.display}`);
      output.print();
      if (findings.length > 0) {
        for (const line of findingsTable(findings)) output.print(line);
        output.print();
      }
      output.print(summary);
    }
    return {
      exitCode: errors === 0 ? ExitCode.ok : ExitCode.entityFailed,
      json: {
        entities: entities.map((entity) => entity.name),
        errors,
        warnings,
        findings: findings.map((finding) => ({ ...finding, column: finding.column ?? null })),
      },
      ...(errors === 0 ? {} : { error: summary.replace(/^check: /, '') }),
    };
  } finally {
    for (const client of clients) client.release();
    await Promise.all([source.end(), target.end()]).catch(() => undefined);
  }
}

/** entity, column, level, message: one row per finding, errors first. */
export function findingsTable(findings: readonly Finding[]): string[] {
  const rows = [...findings]
    .sort((a, b) => (a.level === b.level ? 0 : a.level === 'error' ? -1 : 1))
    .map((finding) => [finding.entity, finding.column ?? '', finding.level, finding.message]);
  const headings = ['entity', 'column', 'level', 'message'];
  const widths = headings.map((heading, i) =>
    Math.max(heading.length, ...rows.map((row) => row[i]?.length ?? 0)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headings), ...rows.map(line)];
}
