import type { Scope, SourceSnapshot, SyncDatabase } from '../db/types.js';
import type { Registry } from '../entity/registry.js';
import type { AnyEntity } from '../entity/types.js';
import type { Logger } from '../logger.js';
import type { DetectionSettings } from './detection.js';
import type { SyncEvent, SyncEventListener } from './events.js';
import { EntityTally } from './result.js';

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

  constructor(
    readonly settings: RunSettings,
    readonly source: SourceSnapshot,
    readonly target: SyncDatabase,
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

  /** The scope an entity's reads and writes use. */
  scopeOf(entity: AnyEntity): Scope {
    return entity.tenantColumn === undefined ? {} : this.scope;
  }
}
