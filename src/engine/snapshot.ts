import type {
  KeySet,
  ReadRequest,
  SourceDatabase,
  SourceRow,
  SourceSnapshot,
  TextKey,
  TextRow,
} from '../db/types.js';
import type { AnyEntity } from '../entity/types.js';

type OpenOptions = Parameters<SourceDatabase['open']>[0];

/**
 * The source snapshot of a run, as the pipeline reads it, and replaceable: a read that fails is
 * recorded, so that the entity's retry can read a new snapshot. The old one cannot be trusted
 * after a failure: its connection may be gone (a terminated backend, a recovery conflict on a
 * standby ends the session) or its transaction aborted.
 */
export class RunSource implements SourceSnapshot {
  private failure: { readonly error: unknown } | undefined;

  private constructor(
    private readonly database: SourceDatabase,
    private readonly options: OpenOptions,
    private current: SourceSnapshot,
  ) {}

  /** Opens the run's first snapshot. */
  static async open(database: SourceDatabase, options: OpenOptions): Promise<RunSource> {
    return new RunSource(database, options, await database.open(options));
  }

  /** What the latest read of the current snapshot failed with, if one did. */
  get failedWith(): { readonly error: unknown } | undefined {
    return this.failure;
  }

  /**
   * Ends the current snapshot and opens a new one, which later reads use. When opening fails,
   * the failed snapshot stays and the error is thrown, so the next attempt tries again.
   */
  async replace(): Promise<void> {
    const next = await this.database.open(this.options);
    const old = this.current;
    this.current = next;
    this.failure = undefined;
    await old.close().catch(() => undefined);
  }

  get features() {
    return this.current.features;
  }

  /** The current snapshot's change tracking: an entity's attempt reads one snapshot throughout. */
  get changes(): SourceSnapshot['changes'] {
    const changes = this.current.changes;
    if ('unavailable' in changes) return changes;
    return {
      origin: changes.origin,
      watermark: changes.watermark,
      unreadableSince: (watermark) => changes.unreadableSince(watermark),
      ageing: (watermark) => changes.ageing(watermark),
      tableIdentity: (entity) => this.watched(() => changes.tableIdentity(entity)),
      census: (entity, request, since) =>
        this.watched(() => changes.census(entity, request, since)),
    };
  }

  danglingRows(entity: AnyEntity, request: ReadRequest, limit: number) {
    const snapshot = this.current;
    if (!snapshot.danglingRows) return Promise.resolve({ count: 0, parents: [], keys: [] });
    return this.watched(() =>
      (snapshot.danglingRows as NonNullable<typeof snapshot.danglingRows>)(entity, request, limit),
    );
  }

  fingerprints(entity: AnyEntity, request: ReadRequest) {
    return this.watched(() => this.current.fingerprints(entity, request));
  }

  keySet(entity: AnyEntity, request: ReadRequest): Promise<KeySet | undefined> {
    const snapshot = this.current;
    if (!snapshot.keySet) return Promise.resolve(undefined);
    return this.watched(() =>
      (snapshot.keySet as NonNullable<typeof snapshot.keySet>)(entity, request),
    );
  }

  prepare(entity: AnyEntity, request: ReadRequest): Promise<void> {
    const snapshot = this.current;
    if (!snapshot.prepare) return Promise.resolve();
    return this.watched(() =>
      (snapshot.prepare as NonNullable<typeof snapshot.prepare>)(entity, request),
    );
  }

  packedKey(entity: AnyEntity, request: ReadRequest): Promise<readonly number[] | undefined> {
    const snapshot = this.current;
    if (!snapshot.packedKey) return Promise.resolve(undefined);
    return this.watched(() =>
      (snapshot.packedKey as NonNullable<typeof snapshot.packedKey>)(entity, request),
    );
  }

  bulkText(entity: AnyEntity, request: ReadRequest): AsyncIterable<Uint8Array> | undefined {
    const snapshot = this.current;
    if (!snapshot.bulkText) return undefined;
    const text = snapshot.bulkText(entity, request);
    return text && this.watchedStream(() => text);
  }

  rows(entity: AnyEntity, request: ReadRequest): AsyncIterable<readonly SourceRow[]> {
    return this.watchedStream(() => this.current.rows(entity, request));
  }

  rowsByKey(entity: AnyEntity, request: ReadRequest, keys: readonly TextKey[]) {
    return this.watched(() => this.current.rowsByKey(entity, request, keys));
  }

  nullKeyRows(entity: AnyEntity, request: ReadRequest, limit: number): Promise<TextRow[]> {
    return this.watched(() => this.current.nullKeyRows(entity, request, limit));
  }

  close(): Promise<void> {
    return this.current.close();
  }

  private async watched<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      this.failure = { error };
      throw error;
    }
  }

  private async *watchedStream<T>(stream: () => AsyncIterable<T>): AsyncGenerator<T> {
    try {
      yield* stream();
    } catch (error) {
      this.failure = { error };
      throw error;
    }
  }
}
