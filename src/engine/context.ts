import type { ParentReference, Scope, SyncDatabase } from '../db/types.js';
import type { Registry } from '../entity/registry.js';
import type { AnyEntity } from '../entity/types.js';
import type { Logger } from '../logger.js';
import type { DetectionSettings } from './detection.js';
import type { SyncEvent, SyncEventListener } from './events.js';
import { childColumns } from './references.js';
import { EntityTally } from './result.js';
import type { RetryPolicy } from './retry.js';
import type { RunSource } from './snapshot.js';

/** Keys an entity gains and loses in a dry run, so later entities see the projected target. */
export interface Projection {
  readonly added: Set<string>;
  readonly removed: Set<string>;
}

/** The settings of one run. */
export interface RunSettings {
  readonly registry: Registry;
  /** The entities this run syncs. */
  readonly selected: ReadonlySet<string>;
  readonly scope: Scope;
  readonly logger: Logger;
  readonly dryRun: boolean;
  /** Record the keys of every change in the results. */
  readonly listChanges: boolean;
  readonly statementTimeoutMs: number | undefined;
  readonly lockTimeoutMs: number | undefined;
  readonly onEvent: SyncEventListener | undefined;
  /** How changed rows are found. */
  readonly detection: DetectionSettings;
  /** How an entity that failed for a passing reason is tried again; `attempts: 1` never. */
  readonly retry: RetryPolicy;
}

/** Everything one run shares between its entities. */
export class RunContext {
  /** The run's tenant as PostgreSQL prints it, to compare with a row's tenant column. */
  readonly tenantText: string | undefined;
  readonly registry: Registry;
  readonly selected: ReadonlySet<string>;
  readonly scope: Scope;
  readonly logger: Logger;
  readonly dryRun: boolean;
  private readonly tallies = new Map<string, EntityTally>();
  private readonly projections = new Map<string, Projection>();
  private readonly scopes = new Map<string, Scope>();

  constructor(
    readonly settings: RunSettings,
    /** The run's source snapshot; an entity's retry may replace it (see `RunSource`). */
    readonly source: RunSource,
    readonly target: SyncDatabase,
    /** Whether an error may pass by itself: the databases' own verdict. */
    readonly isTransient: (error: unknown) => boolean,
  ) {
    ({ registry: this.registry, selected: this.selected, scope: this.scope } = settings);
    ({ logger: this.logger, dryRun: this.dryRun } = settings);
    this.tenantText = this.scope.tenantId === undefined ? undefined : String(this.scope.tenantId);
  }

  /** Tells the listener; a listener that throws is logged, never allowed to break the run. */
  emit(event: SyncEvent): void {
    if (!this.settings.onEvent) return;
    try {
      this.settings.onEvent(event);
    } catch (error) {
      this.logger.warn({ err: error, event: event.type }, 'sync event listener threw; ignored');
    }
  }

  tally(entity: AnyEntity): EntityTally {
    let tally = this.tallies.get(entity.name);
    if (!tally) {
      tally = new EntityTally();
      this.tallies.set(entity.name, tally);
    }
    return tally;
  }

  /** The projected changes of an entity in a dry run; empty (and unused) in a real run. */
  projection(entity: AnyEntity): Projection {
    let projection = this.projections.get(entity.name);
    if (!projection) {
      projection = { added: new Set(), removed: new Set() };
      this.projections.set(entity.name, projection);
    }
    return projection;
  }

  /**
   * Where the dry-run projections stand, to put them back when an attempt fails: an attempt
   * only adds keys, and a Set keeps insertion order, so its size marks what came before.
   */
  projectionMark(): ReadonlyMap<Set<string>, number> {
    const mark = new Map<Set<string>, number>();
    for (const { added, removed } of this.projections.values()) {
      mark.set(added, added.size);
      mark.set(removed, removed.size);
    }
    return mark;
  }

  /** Takes out the keys the projections gained since `mark`. */
  rewindProjections(mark: ReadonlyMap<Set<string>, number>): void {
    for (const { added, removed } of this.projections.values()) {
      for (const keys of [added, removed]) {
        let keep = mark.get(keys) ?? 0;
        for (const key of keys) {
          if (keep > 0) keep--;
          else keys.delete(key);
        }
      }
    }
  }

  /**
   * The scope an entity's reads and writes use: the run's tenant for a tenant-scoped entity; for
   * a global entity in a tenant's run, the rows its references to tenant-scoped parents tie to
   * the tenant, so a fleet of tenants does not each read the whole table; otherwise every row.
   */
  scopeOf(entity: AnyEntity): Scope {
    if (entity.tenantColumn !== undefined) return this.scope;
    if (this.scope.tenantId === undefined) return {};
    let scope = this.scopes.get(entity.name);
    if (!scope) {
      const parents: ParentReference[] = [];
      for (const reference of entity.references) {
        const parent = this.registry.get(reference.entity);
        if (parent.tenantColumn !== undefined)
          parents.push({ parent, columns: childColumns(parent, reference) });
      }
      scope = parents.length === 0 ? {} : { tenantId: this.scope.tenantId, parents };
      this.scopes.set(entity.name, scope);
    }
    return scope;
  }
}
