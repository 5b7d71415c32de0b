import type { TenantId } from '../db/types.js';
import type { MeterSyncError } from '../errors.js';
import type { EntityResult, FailedAttempt, SyncResult } from './result.js';

/**
 * What a running sync reports as it goes, in this order: run, then each entity, then run end.
 * An entity whose attempt failed for a passing reason reports `entity-retry` before it is tried
 * again (its progress then starts over).
 */
export type SyncEvent =
  | {
      readonly type: 'run-start';
      readonly entities: readonly string[];
      readonly tenantId: TenantId | undefined;
      readonly dryRun: boolean;
    }
  | { readonly type: 'entity-start'; readonly entity: string }
  | {
      readonly type: 'entity-progress';
      readonly entity: string;
      /** `reading` the source, `comparing` with the target, `writing` the target. */
      readonly phase: 'reading' | 'comparing' | 'writing';
      /** Rows handled so far in this phase. */
      readonly rows: number;
    }
  | {
      readonly type: 'entity-retry';
      readonly entity: string;
      /** The attempt that failed, its message and code; its changes were rolled back. */
      readonly failed: FailedAttempt;
      /** The error it failed with. */
      readonly error: MeterSyncError;
      /** The delay before the next attempt, in ms. */
      readonly delayMs: number;
      /** The next attempt's number. */
      readonly nextAttempt: number;
      /** Whether the next attempt reads a new source snapshot (the failure came from it). */
      readonly newSnapshot: boolean;
    }
  | { readonly type: 'entity-end'; readonly entity: string; readonly result: EntityResult }
  | { readonly type: 'run-end'; readonly result: SyncResult };

/** Receives sync events. It must not throw; if it does, the error is logged and ignored. */
export type SyncEventListener = (event: SyncEvent) => void;
