import type { TextRow } from './types.js';

/** The row "hash" of `HashMode` `text`: the row's text itself, so equal means equal. */
export function textHash(values: TextRow): string {
  return JSON.stringify(values);
}
