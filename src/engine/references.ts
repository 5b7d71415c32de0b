import type { StoredRow, SyncDatabase } from '../db/types.js';
import { type Canonical, encodeKey } from '../diff/canonical.js';
import { canonicalColumns, type PreparedRow, prepareTargetRows } from '../diff/rows.js';
import type { AnyEntity, EntityReference } from '../entity/types.js';
import type { RunContext } from './context.js';

/** The child columns of a reference, in the order of the parent's key. */
function childColumns(parent: AnyEntity, reference: EntityReference): string[] {
  return parent.key.map(
    (parentColumn) =>
      Object.keys(reference.columns).find(
        (child) => reference.columns[child] === parentColumn,
      ) as string,
  );
}

/** The parent key a row points at, or `undefined` when part of it is NULL (no reference, as in SQL). */
function referencedKey(values: readonly Canonical[]): string | undefined {
  return values.includes(null) ? undefined : encodeKey(values);
}

/** The keys of all stored rows of `parent` (every tenant), as projected by a dry run. */
async function parentKeys(
  context: RunContext,
  db: SyncDatabase,
  parent: AnyEntity,
): Promise<Set<string>> {
  const rows = await db.scan(parent, { columns: parent.key });
  const keys = new Set(rows.map((row) => encodeKey(canonicalColumns(parent, row, parent.key))));
  if (context.dryRun) {
    const projection = context.projection(parent);
    for (const key of projection.removed) keys.delete(key);
    for (const key of projection.added) keys.add(key);
  }
  return keys;
}

/** A source row skipped because a parent row it references is not in the target. */
export interface Orphan<Row> {
  readonly row: PreparedRow<Row>;
  readonly missing: { readonly entity: string; readonly key: Record<string, unknown> };
}

/**
 * Splits source rows into those whose references resolve in the target (as it stands after the
 * parents were synced) and orphans. A reference with a NULL column points at nothing and passes.
 */
export async function splitOrphans<Row extends Record<string, unknown>>(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  rows: readonly PreparedRow<Row>[],
): Promise<{ kept: PreparedRow<Row>[]; orphans: Orphan<Row>[] }> {
  if (entity.references.length === 0 || rows.length === 0) return { kept: [...rows], orphans: [] };
  // One after another: the queries share the target's connection, which runs one at a time.
  const checks = [];
  for (const reference of entity.references) {
    const parent = context.registry.get(reference.entity);
    const columns = childColumns(parent, reference);
    const positions = columns.map((column) => entity.columnNames.indexOf(column));
    checks.push({ parent, columns, positions, keys: await parentKeys(context, db, parent) });
  }
  const kept: PreparedRow<Row>[] = [];
  const orphans: Orphan<Row>[] = [];
  for (const row of rows) {
    const broken = checks.find(({ positions, keys }) => {
      const key = referencedKey(positions.map((position) => row.values[position] ?? null));
      return key !== undefined && !keys.has(key);
    });
    if (!broken) kept.push(row);
    else {
      const key = Object.fromEntries(
        broken.parent.key.map((column, i) => [column, row.row[broken.columns[i] as string]]),
      );
      orphans.push({ row, missing: { entity: broken.parent.name, key } });
    }
  }
  return { kept, orphans };
}

/** Rows to delete in one entity, as stored key values. */
export interface CascadeDelete {
  readonly entity: AnyEntity;
  readonly keys: readonly Record<string, unknown>[];
  readonly encodedKeys: readonly string[];
}

/** How to delete an entity's rows without breaking references. */
export interface DeletionPlan<Row> {
  /** Rows of children (and their children) that reference deleted rows: deleted first, deepest first. */
  readonly cascades: readonly CascadeDelete[];
  /** The entity's own rows to delete. */
  readonly deletable: readonly PreparedRow<Row>[];
  /** The entity's own rows kept because rows outside this run's scope still reference them. */
  readonly kept: readonly PreparedRow<Row>[];
  /** The entities whose out-of-scope rows caused rows to be kept. */
  readonly keptFor: readonly string[];
}

interface Node {
  readonly entity: AnyEntity;
  readonly key: Record<string, unknown>;
  readonly encoded: string;
  /** Ids of the parent rows whose deletion makes this row go; empty for the entity's own rows. */
  readonly causes: string[];
  held: boolean;
}

const nodeId = (entity: AnyEntity, encoded: string) => `${entity.name}\u0000${encoded}`;

/**
 * Plans deleting `rows` of `entity` so that no reference in the target breaks: rows of child
 * entities (in this run's scope) that reference them are deleted first, in the same transaction;
 * a row still referenced by a row this run may not touch (another tenant's, or an entity not in
 * the run) is kept, and so is every row above it in the chain.
 */
export async function planDeletion<Row extends Record<string, unknown>>(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  rows: readonly PreparedRow<Row>[],
): Promise<DeletionPlan<Row>> {
  const nodes = new Map<string, Node>();
  for (const row of rows) {
    nodes.set(nodeId(entity, row.key), {
      entity,
      key: row.row,
      encoded: row.key,
      causes: [],
      held: false,
    });
  }
  const keptFor = new Set<string>();
  // A kept row keeps the rows it references: its causes, complete by the time it is held,
  // since all of an entity's parents are searched before the entity itself.
  const hold = (id: string) => {
    const node = nodes.get(id);
    if (!node || node.held) return;
    node.held = true;
    for (const cause of node.causes) hold(cause);
  };

  // Parents come before children in registry order, so each entity's doomed rows are complete
  // before its children are searched for rows that reference them.
  const start = context.registry.entities.indexOf(entity);
  for (const current of context.registry.entities.slice(start)) {
    const doomed = new Set(
      [...nodes.values()].filter((node) => node.entity === current).map((node) => node.encoded),
    );
    if (doomed.size === 0) continue;
    for (const { child, reference } of context.registry.childrenOf(current.name)) {
      const columns = childColumns(current, reference);
      const tenantColumn = child.tenantColumn;
      const read = [
        ...new Set([
          ...child.key,
          ...columns,
          ...(tenantColumn === undefined ? [] : [tenantColumn]),
        ]),
      ];
      const removed = context.dryRun ? context.projection(child).removed : undefined;
      for (const stored of await db.scan(child, { columns: read })) {
        const parentKey = referencedKey(canonicalColumns(child, stored, columns));
        if (parentKey === undefined || !doomed.has(parentKey)) continue;
        const encoded = encodeKey(canonicalColumns(child, stored, child.key));
        if (removed?.has(encoded)) continue;
        const parentId = nodeId(current, parentKey);
        const tenant =
          tenantColumn === undefined
            ? null
            : (canonicalColumns(child, stored, [tenantColumn])[0] ?? null);
        if (!context.inScope(child, tenant)) {
          keptFor.add(child.name);
          hold(parentId);
          continue;
        }
        const id = nodeId(child, encoded);
        const node = nodes.get(id) ?? {
          entity: child,
          key: keyValues(child, stored),
          encoded,
          causes: [],
          held: false,
        };
        node.causes.push(parentId);
        nodes.set(id, node);
      }
    }
  }
  // A child row goes only if some row it references goes.
  const goes = (node: Node): boolean =>
    !node.held && (node.causes.length === 0 || node.causes.some((cause) => goesById(cause)));
  const memo = new Map<string, boolean>();
  const goesById = (id: string): boolean => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    const node = nodes.get(id);
    const result = node !== undefined && goes(node);
    memo.set(id, result);
    return result;
  };

  const cascades = new Map<AnyEntity, { keys: Record<string, unknown>[]; encodedKeys: string[] }>();
  for (const [id, node] of nodes) {
    if (node.entity === entity || !goesById(id)) continue;
    const cascade = cascades.get(node.entity) ?? { keys: [], encodedKeys: [] };
    cascade.keys.push(node.key);
    cascade.encodedKeys.push(node.encoded);
    cascades.set(node.entity, cascade);
  }
  const order = context.registry.entities;
  return {
    cascades: [...cascades]
      .sort(([a], [b]) => order.indexOf(b) - order.indexOf(a))
      .map(([child, cascade]) => ({ entity: child, ...cascade })),
    deletable: rows.filter((row) => goesById(nodeId(entity, row.key))),
    kept: rows.filter((row) => !goesById(nodeId(entity, row.key))),
    keptFor: [...keptFor],
  };
}

/** The key of a stored row, each column parsed through the schema where it can be. */
function keyValues(entity: AnyEntity, stored: StoredRow): Record<string, unknown> {
  const [parsed] = prepareTargetRows(entity, [stored]);
  return Object.fromEntries(
    entity.key.map((column) => [column, parsed?.row[column] ?? stored[column]]),
  );
}
