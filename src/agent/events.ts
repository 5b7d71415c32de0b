import type { SyncEvent } from '../engine/events.js';
import type { LockedError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * What a sync agent reports: the events of each run (`run-start`, `entity-start`,
 * `entity-progress`, `entity-end`, `run-end`, as `performSync` emits them), plus why a run did
 * not happen: `run-skipped` when another sync held the sync lock, `run-failed` when the run
 * could not complete (a database unreachable, invalid options). `run-end`, `run-skipped` and
 * `run-failed` come once the run is over: `status()` already shows its outcome.
 */
export type SyncAgentEvent =
  | SyncEvent
  | { readonly type: 'run-skipped'; readonly reason: 'locked'; readonly error: LockedError }
  | { readonly type: 'run-failed'; readonly error: Error };

/** The event types of a sync agent. */
export type SyncAgentEventType = SyncAgentEvent['type'];

/** The event of one type. */
export type SyncAgentEventOf<T extends SyncAgentEventType> = Extract<SyncAgentEvent, { type: T }>;

/** Delivers events to listeners by type; a listener that throws is logged and skipped. */
export class EventHub {
  private readonly listeners = new Map<SyncAgentEventType, Set<(event: never) => void>>();

  constructor(
    private readonly logger: Logger,
    private readonly everyEvent?: (event: SyncAgentEvent) => void,
  ) {}

  on<T extends SyncAgentEventType>(
    type: T,
    listener: (event: SyncAgentEventOf<T>) => void,
  ): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit(event: SyncAgentEvent): void {
    if (this.everyEvent) this.deliver(this.everyEvent, event);
    for (const listener of this.listeners.get(event.type) ?? []) {
      this.deliver(listener as (event: SyncAgentEvent) => void, event);
    }
  }

  clear(): void {
    this.listeners.clear();
  }

  private deliver(listener: (event: SyncAgentEvent) => void, event: SyncAgentEvent): void {
    try {
      listener(event);
    } catch (error) {
      this.logger.warn({ err: error, event: event.type }, 'sync agent listener threw; ignored');
    }
  }
}
