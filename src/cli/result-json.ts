import type { EntityResult, SyncResult } from '../engine/result.js';

/** A sync result as plain JSON data: dates as ISO strings, bigints as strings, errors flattened. */
export function resultToJson(result: SyncResult): Record<string, unknown> {
  return {
    ok: result.ok,
    dryRun: result.dryRun,
    tenantId: typeof result.tenantId === 'bigint' ? result.tenantId.toString() : result.tenantId,
    startedAt: result.startedAt.toISOString(),
    finishedAt: result.finishedAt.toISOString(),
    entities: Object.fromEntries(
      Object.entries<EntityResult>(result.entities).map(([name, entity]) => [
        name,
        entityToJson(entity),
      ]),
    ),
  };
}

function entityToJson(entity: EntityResult): Record<string, unknown> {
  const { error, durationMs, ...rest } = entity;
  return {
    ...rest,
    durationMs: Math.round(durationMs),
    ...(error ? { error: errorToJson(error) } : {}),
  };
}

/** An error as JSON data: its class name, message and, for database errors, the SQLSTATE. */
export function errorToJson(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const { code, entity } = error as { code?: unknown; entity?: unknown };
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof entity === 'string' ? { entity } : {}),
  };
}
