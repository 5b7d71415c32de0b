import { resultToJSON } from 'meter-sync';
import type { SyncResult } from '../engine/result.js';

/**
 * A sync result as plain JSON data, as `resultToJSON` gives it (dates as ISO strings, bigints as
 * strings), with whole milliseconds and errors flattened.
 */
export function resultToJson(result: SyncResult): Record<string, unknown> {
  const json = resultToJSON(result);
  const entities = Object.entries(json.entities).map(([name, entity]) => {
    const { error, durationMs, ...rest } = entity;
    const failure = result.entities[name]?.error;
    return [
      name,
      {
        ...rest,
        durationMs: Math.round(durationMs),
        ...(error ? { error: errorToJson(failure) } : {}),
      },
    ];
  });
  return { ...json, entities: Object.fromEntries(entities) };
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
