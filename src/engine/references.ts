import type { SyncDatabase, TextKey } from '../db/types.js';
import type { ParsedRow } from '../diff/parse-row.js';
import type { AnyEntity, EntityReference } from '../entity/types.js';
import type { RunContext } from './context.js';

/** One map key per text key. */
export const encodeKey = (key: TextKey): string => JSON.stringify(key);

/** The text key a map key stands for. */
export const decodeKey = (encoded: string): TextKey => JSON.parse(encoded) as TextKey;

/** The child columns of a reference, in the order of the parent's key. */
export function childColumns(parent: AnyEntity, reference: EntityReference): string[] {
  return parent.key.map(
    (parentColumn) =>
      Object.keys(reference.columns).find(
        (child) => reference.columns[child] === parentColumn,
      ) as string,
  );
}

/** A source row skipped because a parent row it references is not in the target. */
export interface Orphan {
  readonly row: ParsedRow;
  readonly parent: string;
}

/**
 * Splits parsed source rows into those whose references resolve in the target (as it stands
 * after the parents were synced, or as a dry run projects it) and orphans. A reference with a
 * NULL column points at nothing and passes. A reference that ties a global entity's rows to the
 * run's tenant resolves only to a parent row of that tenant: a row written on the strength of a
 * parent the target holds for another tenant would fall outside the target's side of the scope,
 * and be read as new on every run. Reads only the parent keys the rows name.
 */
export async function splitOrphans(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  rows: readonly ParsedRow[],
): Promise<{ kept: ParsedRow[]; orphans: Orphan[] }> {
  let kept = [...rows];
  const orphans: Orphan[] = [];
  // One reference after another: the queries share the target's one connection.
  for (const reference of entity.references) {
    if (kept.length === 0) break;
    const parent = context.registry.get(reference.entity);
    const positions = childColumns(parent, reference).map((column) =>
      entity.columnNames.indexOf(column),
    );
    const pointed = new Map<string, TextKey>();
    for (const row of kept) {
      const key = positions.map((position) => row.values[position] ?? null);
      if (!key.includes(null)) pointed.set(encodeKey(key as string[]), key as string[]);
    }
    const present = new Set((await db.existingKeys(parent, [...pointed.values()])).map(encodeKey));
    const scope = context.scopeOf(entity);
    if (present.size > 0 && scope.parents?.some((tie) => tie.parent === parent)) {
      const keys = [...pointed.values()].filter((key) => present.has(encodeKey(key)));
      for (const key of await db.keysOutsideScope(parent, keys, scope))
        present.delete(encodeKey(key));
    }
    if (context.dryRun) {
      const projection = context.projection(parent);
      for (const key of projection.removed) present.delete(key);
      for (const key of projection.added) present.add(key);
    }
    const next: ParsedRow[] = [];
    for (const row of kept) {
      const key = positions.map((position) => row.values[position] ?? null);
      if (key.includes(null) || present.has(encodeKey(key as string[]))) next.push(row);
      else orphans.push({ row, parent: parent.name });
    }
    kept = next;
  }
  return { kept, orphans };
}

/** Rows to delete in one entity. */
export interface CascadeDelete {
  readonly entity: AnyEntity;
  readonly keys: readonly TextKey[];
}

/** How to delete an entity's rows without breaking references. */
export interface DeletionPlan {
  /** Rows of children (and their children) that reference deleted rows: deleted first, deepest first. */
  readonly cascades: readonly CascadeDelete[];
  /** The entity's own rows to delete. */
  readonly deletable: readonly TextKey[];
  /** The entity's own rows kept because rows outside this run's scope still reference them. */
  readonly kept: readonly TextKey[];
  /** The entities whose out-of-scope rows caused rows to be kept. */
  readonly keptFor: readonly string[];
}

interface Node {
  readonly entity: AnyEntity;
  readonly key: TextKey;
  /** Ids of the parent rows whose deletion makes this row go; empty for the entity's own rows. */
  readonly causes: string[];
  held: boolean;
}

const nodeId = (entity: AnyEntity, key: TextKey) => `${entity.name}\u0000${encodeKey(key)}`;

/**
 * Plans deleting rows of `entity` so that no reference in the target breaks: rows of child
 * entities (in this run's scope) that reference them are deleted first, in the same transaction;
 * a row still referenced by a row this run may not touch (another tenant's, or an entity not in
 * the run) is kept, and so is every row above it in the chain. Reads only the child rows that
 * reference the rows going, level by level.
 */
export async function planDeletion(
  context: RunContext,
  db: SyncDatabase,
  entity: AnyEntity,
  keys: readonly TextKey[],
): Promise<DeletionPlan> {
  const nodes = new Map<string, Node>();
  for (const key of keys) nodes.set(nodeId(entity, key), { entity, key, causes: [], held: false });
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
    const doomed = [...nodes.values()].filter((node) => node.entity === current).map((n) => n.key);
    if (doomed.length === 0) continue;
    for (const { child, reference } of context.registry.childrenOf(current.name)) {
      const columns = childColumns(current, reference);
      const removed = context.dryRun ? context.projection(child).removed : undefined;
      const rows = await db.referencing(child, columns, doomed, context.scopeOf(child));
      for (const row of rows) {
        if (removed?.has(encodeKey(row.key))) continue;
        const parentId = nodeId(current, row.parentKey);
        if (!row.inScope || !context.selected.has(child.name)) {
          keptFor.add(child.name);
          hold(parentId);
          continue;
        }
        const id = nodeId(child, row.key);
        const node = nodes.get(id);
        if (node) node.causes.push(parentId);
        else nodes.set(id, { entity: child, key: row.key, causes: [parentId], held: false });
      }
    }
  }

  // A row goes with its parents only where one of them goes: a row whose parents are all kept
  // stays, or it would be deleted here and written again by its own entity on every run.
  const going = new Map<string, boolean>();
  const goes = (id: string): boolean => {
    const known = going.get(id);
    if (known !== undefined) return known;
    const node = nodes.get(id) as Node;
    const result = !node.held && (node.causes.length === 0 || node.causes.some(goes));
    going.set(id, result);
    return result;
  };
  const own = [...nodes.values()].filter((node) => node.entity === entity);
  const byEntity = new Map<AnyEntity, TextKey[]>();
  for (const [id, node] of nodes) {
    if (node.entity === entity || !goes(id)) continue;
    const list = byEntity.get(node.entity) ?? [];
    list.push(node.key);
    byEntity.set(node.entity, list);
  }
  const order = context.registry.entities;
  return {
    cascades: [...byEntity.entries()]
      .sort(([a], [b]) => order.indexOf(b) - order.indexOf(a))
      .map(([child, childKeys]) => ({ entity: child, keys: childKeys })),
    deletable: own.filter((node) => !node.held).map((node) => node.key),
    kept: own.filter((node) => node.held).map((node) => node.key),
    keptFor: [...keptFor],
  };
}
