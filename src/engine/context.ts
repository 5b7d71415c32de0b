import type { Scope, SourceSnapshot, SyncDatabase } from '../db/types.js';
import { type Canonical, canonical } from '../diff/canonical.js';
import type { Registry } from '../entity/registry.js';
import type { AnyEntity } from '../entity/types.js';
import type { Logger } from '../logger.js';
import { EntityTally } from './result.js';

/** Keys an entity gains and loses in a dry run, so later entities see the projected target. */
export interface Projection {
  readonly added: Set<string>;
  readonly removed: Set<string>;
}

/** Everything one run shares between its entities. */
export class RunContext {
  readonly tenant: Canonical | undefined;
  private readonly tallies = new Map<string, EntityTally>();
  private readonly projections = new Map<string, Projection>();

  constructor(
    readonly registry: Registry,
    /** The entities this run syncs. */
    readonly selected: ReadonlySet<string>,
    readonly scope: Scope,
    readonly source: SourceSnapshot,
    readonly target: SyncDatabase,
    readonly logger: Logger,
    readonly dryRun: boolean,
  ) {
    this.tenant = scope.tenantId === undefined ? undefined : canonical(scope.tenantId);
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

  /** Whether this run may write a stored row of `entity` with these tenant values. */
  inScope(entity: AnyEntity, tenantValue: Canonical): boolean {
    if (!this.selected.has(entity.name)) return false;
    return entity.tenantColumn === undefined || tenantValue === this.tenant;
  }
}
