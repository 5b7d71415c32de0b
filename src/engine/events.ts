import type { TenantId } from '../db/types.js';
import type { EntityResult, SyncResult } from './result.js';

/** What a running sync reports as it goes, in this order: run, then each entity, then run end. */
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
  | { readonly type: 'entity-end'; readonly entity: string; readonly result: EntityResult }
  | { readonly type: 'run-end'; readonly result: SyncResult };

/** Receives sync events. It must not throw; if it does, the error is logged and ignored. */
export type SyncEventListener = (event: SyncEvent) => void;
