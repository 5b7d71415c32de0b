import type { TenantId } from '../types.js';

/** A tenant id as a query parameter: bigints as exact digits. */
export function tenantParameter(tenantId: TenantId | undefined): string | number | undefined {
  return typeof tenantId === 'bigint' ? tenantId.toString() : tenantId;
}
