/**
 * The JSON value `null` stored in a json/jsonb column, as distinct from SQL NULL (JS `null`).
 * Reads of a json column holding `'null'::jsonb` yield it, and writing it stores JSON null, so
 * both survive a sync. It serialises as `null` in `JSON.stringify`.
 */
export const JsonNull: { readonly toJSON: () => null } = Object.freeze({ toJSON: () => null });

/** The type of {@link JsonNull}. */
export type JsonNullValue = typeof JsonNull;
