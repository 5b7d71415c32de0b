import { formatKey } from 'meter-sync';
import type { ChangeKey, EntityResult, SyncResult } from '../engine/result.js';

/** How many sample keys of a warning to print. */
const SAMPLE_KEYS = 3;

export interface RenderOptions {
  /** A dry run: headings say what would happen. */
  readonly plan: boolean;
  /** List the keys of every change (the result must carry `changes`). */
  readonly verbose?: boolean;
}

/**
 * The result as the CLI prints it: one table row per entity (inserted / updated / deleted /
 * skipped / status / rows read: changed ones or all / time), then warnings, errors, how a plan
 * found each entity's changes, the changed keys when verbose, and a summary.
 */
export function renderResult(result: SyncResult, options: RenderOptions): string[] {
  const entries = Object.entries<EntityResult>(result.entities);
  const headings = options.plan
    ? ['entity', 'insert', 'update', 'delete', 'skip', 'status', 'rows read', 'time']
    : ['entity', 'inserted', 'updated', 'deleted', 'skipped', 'status', 'rows read', 'time'];
  const rows = entries.map(([name, entity]) => [
    name,
    String(entity.inserted),
    String(entity.updated),
    String(entity.deleted),
    String(entity.skipped),
    entity.status === 'ok' ? 'ok' : 'FAILED',
    entity.detection?.mode === 'incremental' ? 'changed' : entity.detection ? 'all' : '-',
    formatDuration(entity.durationMs),
  ]);
  const lines = table(headings, rows, [false, true, true, true, true, false, false, true]);

  const notes: string[] = [];
  for (const [, entity] of entries) {
    for (const warning of entity.warnings) {
      const samples = warning.sampleKeys.slice(0, SAMPLE_KEYS).map(formatKey).join(', ');
      const more = warning.sampleKeys.length > SAMPLE_KEYS || warning.count > SAMPLE_KEYS;
      notes.push(`warning  ${warning.message}${samples ? `: ${samples}${more ? ', …' : ''}` : ''}`);
    }
  }
  for (const [name, entity] of entries) {
    if (entity.attempts > 1 || (entity.error && entity.failedAttempts.length > 1)) {
      const outcome = entity.status === 'ok' ? 'succeeded on' : 'gave up after';
      const failures = entity.failedAttempts.map(
        (failed) => `${failed.attempt}: ${failed.code ?? 'error'}`,
      );
      notes.push(
        `retry    ${name}: ${outcome} attempt ${entity.attempts}; failed attempts ${failures.join(', ')}`,
      );
    }
  }
  for (const [, entity] of entries) {
    if (entity.error) notes.push(`error    ${oneLine(entity.error.message)}`);
  }
  // A plan says how each entity's changes were found; a sync leaves it to the log.
  if (options.plan) {
    for (const [name, entity] of entries) {
      if (entity.detection)
        notes.push(`rows     ${name}: ${entity.detection.mode}: ${entity.detection.reason}`);
    }
  }
  if (entries.some(([, entity]) => entity.error?.name === 'SchemaError')) {
    notes.push('hint     meter-sync init --target URL creates the tables of the built-in entities');
  }
  if (notes.length > 0) lines.push('', ...notes);

  if (options.verbose) for (const line of renderChanges(entries)) lines.push(line);
  lines.push('', summary(result, entries, options.plan));
  return lines;
}

function renderChanges(entries: readonly [string, EntityResult][]): string[] {
  const lines: string[] = [];
  for (const [name, entity] of entries) {
    const { changes } = entity;
    if (!changes) continue;
    const listed = [
      ...sortedKeys(changes.inserted).map((key) => `  insert  ${key}`),
      ...sortedKeys(changes.updated).map((key) => `  update  ${key}`),
      ...sortedKeys(changes.deleted).map((key) => `  delete  ${key}`),
    ];
    if (listed.length > 0) lines.push('', name, ...listed);
  }
  return lines;
}

/** Keys as text in reading order: `(register_id=9)` before `(register_id=10)`. */
const sortedKeys = (keys: readonly ChangeKey[]) =>
  keys.map(formatKey).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));

function summary(result: SyncResult, entries: readonly [string, EntityResult][], plan: boolean) {
  const total = (pick: (entity: EntityResult) => number) =>
    entries.reduce((sum, [, entity]) => sum + pick(entity), 0);
  const inserted = total((entity) => entity.inserted);
  const updated = total((entity) => entity.updated);
  const deleted = total((entity) => entity.deleted);
  const skipped = total((entity) => entity.skipped);
  const failed = entries.filter(([, entity]) => entity.status === 'failed').length;
  const elapsed = formatDuration(result.finishedAt.getTime() - result.startedAt.getTime());
  const count = `${entries.length} entit${entries.length === 1 ? 'y' : 'ies'}`;
  const failures = failed > 0 ? `; ${failed} of ${count} FAILED` : '';
  return plan
    ? `plan for ${count} in ${elapsed}: would insert ${inserted}, update ${updated}, delete ${deleted}, skip ${skipped}${failures}; nothing was written`
    : `synced ${count} in ${elapsed}: ${inserted} inserted, ${updated} updated, ${deleted} deleted, ${skipped} skipped${failures}`;
}

/** `12 ms`, `1.4 s`. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function table(
  headings: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: readonly boolean[],
): string[] {
  const widths = headings.map((heading, column) =>
    Math.max(heading.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? cell.length;
        return rightAligned[column] ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(headings), ...rows.map(line)];
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ');
