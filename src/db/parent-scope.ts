/**
 * How a global entity's row stands towards a tenant, judged by the tenant-scoped parent rows it
 * names (`Scope.parents`). Stores that judge rows in memory use it; PostgreSQL says the same in
 * SQL (`src/db/pg/reads.ts`).
 */
import type { ParentReference, Scope, TextValue } from './types.js';

/**
 * `within`: every reference has a NULL column or names a parent row of the tenant (the rows a
 * tenant's run reads). `other-tenant`: some reference names a parent row of another tenant (rows
 * the run leaves alone). `dangling`: neither; some reference names no parent row at all.
 */
export type Standing = 'within' | 'other-tenant' | 'dangling';

/**
 * The tenant, as text, of the parent row with this key: `undefined` when there is none, `null`
 * for a row without a tenant or that the side cannot see (a `source.query` shows one tenant).
 */
export type ParentTenant = (
  reference: ParentReference,
  key: readonly string[],
) => TextValue | undefined;

/** Where a row (its values by column) stands towards `scope`'s tenant. */
export function standingOf(
  scope: Scope,
  value: (column: string) => TextValue,
  parentTenant: ParentTenant,
): Standing {
  const tenant = scope.tenantId === undefined ? undefined : String(scope.tenantId);
  let dangling = false;
  for (const reference of scope.parents ?? []) {
    const key = reference.columns.map(value);
    if (key.includes(null)) continue;
    const found = parentTenant(reference, key as string[]);
    if (found === undefined) dangling = true;
    else if (found !== tenant) return 'other-tenant';
  }
  return dangling ? 'dangling' : 'within';
}

/** Parent rows' tenants by key, for `standingOf`, from rows read whole. */
export function parentTenants(
  rowsOf: (reference: ParentReference) => readonly { key: readonly string[]; tenant: TextValue }[],
): ParentTenant {
  const maps = new Map<ParentReference, Map<string, TextValue>>();
  return (reference, key) => {
    let map = maps.get(reference);
    if (!map) {
      map = new Map(rowsOf(reference).map((row) => [JSON.stringify(row.key), row.tenant]));
      maps.set(reference, map);
    }
    return map.get(JSON.stringify(key));
  };
}
