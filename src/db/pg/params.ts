import type { TenantId } from '../types.js';

/** A tenant id as a query parameter: bigints as exact digits. */
export function tenantParameter(tenantId: TenantId | undefined): string | number | undefined {
  return typeof tenantId === 'bigint' ? tenantId.toString() : tenantId;
}

/** The characters PostgreSQL's array literal escapes within an element's quotes. */
const ARRAY_ESCAPED = /["\\]/;
const ARRAY_ESCAPED_ALL = new RegExp(ARRAY_ESCAPED.source, 'g');

/**
 * Texts (or NULLs) as one `text[]` parameter, written as PostgreSQL's array literal here:
 * node-postgres escapes every element with two regular expressions, some milliseconds for the
 * thousands of keys or values a lookup or write sends, where most need no escape at all. The
 * same literal node-postgres writes. Values of other kinds are left to node-postgres, as given.
 */
export function textArrayParameter(texts: readonly unknown[]): unknown {
  let literal = '{';
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    if (i > 0) literal += ',';
    if (text === null || text === undefined) literal += 'NULL';
    else if (typeof text !== 'string') return texts;
    else
      literal += `"${ARRAY_ESCAPED.test(text) ? text.replace(ARRAY_ESCAPED_ALL, '\\$&') : text}"`;
  }
  return `${literal}}`;
}
