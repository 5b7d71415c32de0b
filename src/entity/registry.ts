import { DefinitionError } from '../errors.js';
import type { AnyEntity, EntityReference } from './types.js';

/** A reference seen from the parent's side. */
export interface ChildReference {
  readonly child: AnyEntity;
  readonly reference: EntityReference;
}

/**
 * A validated set of entity definitions in dependency order. Build it with `createRegistry`.
 * Lookups are typed: `registry.get('register')` returns the `register` definition's type.
 */
export interface Registry<E extends AnyEntity = AnyEntity> {
  /** The definitions, parents before children (topological order of `references`). */
  readonly entities: readonly E[];
  /** The entity names, in dependency order. */
  readonly names: readonly E['name'][];
  /** The definition called `name`. Throws a `DefinitionError` for an unknown name. */
  get<N extends E['name']>(name: N): Extract<E, { name: N }>;
  /** Whether an entity called `name` is registered. */
  has(name: string): name is E['name'];
  /** The entities that reference `name`, with the reference they use. */
  childrenOf(name: string): readonly ChildReference[];
  /** The entities named, in dependency order. Throws a `DefinitionError` for an unknown name. */
  select(names: Iterable<string>): readonly E[];
  /** A new registry with these definitions added (validated as a whole). */
  with<const More extends readonly AnyEntity[]>(...definitions: More): Registry<E | More[number]>;
}

/**
 * Validates definitions as a set and orders them. Rejects duplicate names, two entities on one
 * table, references to unknown entities or to columns that are not the parent's key, and cycles.
 *
 * @example
 * ```ts
 * const registry = createRegistry([...builtInEntities, meterReading]);
 * registry.get('meter_reading').key; // typed
 * ```
 * @throws {DefinitionError}
 */
export function createRegistry<const Defs extends readonly AnyEntity[]>(
  definitions: Defs,
): Registry<Defs[number]> {
  type E = Defs[number];
  const byName = new Map<string, E>();
  const byTable = new Map<string, string>();
  for (const entity of definitions) {
    if (typeof entity?.name !== 'string' || !Array.isArray(entity.columnNames)) {
      throw new DefinitionError('registry: every entry must be made with defineEntity()');
    }
    if (byName.has(entity.name)) {
      throw new DefinitionError(
        `registry: two entities are named "${entity.name}"; names must be unique`,
        {
          entity: entity.name,
        },
      );
    }
    const table = `${entity.table.schema ?? ''}.${entity.table.name}`;
    const other = byTable.get(table);
    if (other !== undefined) {
      throw new DefinitionError(
        `registry: entities "${other}" and "${entity.name}" both write table "${entity.table.name}"; each would delete the other's rows`,
        { entity: entity.name },
      );
    }
    byName.set(entity.name, entity);
    byTable.set(table, entity.name);
  }

  const children = new Map<string, ChildReference[]>();
  for (const entity of definitions) {
    for (const reference of entity.references) {
      checkReference(entity, reference, byName);
      const list = children.get(reference.entity) ?? [];
      list.push({ child: entity, reference });
      children.set(reference.entity, list);
    }
  }

  const ordered = topologicalOrder(definitions);
  const position = new Map(ordered.map((entity, index) => [entity.name, index]));
  const get = (name: string): E => {
    const entity = byName.get(name);
    if (!entity) {
      throw new DefinitionError(
        `unknown entity "${name}" (known: ${[...byName.keys()].join(', ')})`,
        { entity: name },
      );
    }
    return entity;
  };

  return Object.freeze({
    entities: ordered,
    names: Object.freeze(ordered.map((entity) => entity.name)),
    get: get as Registry<E>['get'],
    has: (name: string): name is E['name'] => byName.has(name),
    childrenOf: (name: string) => children.get(name) ?? [],
    select: (names: Iterable<string>) =>
      [...new Set(names)]
        .map(get)
        .sort((a, b) => (position.get(a.name) ?? 0) - (position.get(b.name) ?? 0)),
    with: <const More extends readonly AnyEntity[]>(...more: More) =>
      createRegistry([...definitions, ...more]),
  });
}

function checkReference(
  entity: AnyEntity,
  reference: EntityReference,
  byName: Map<string, AnyEntity>,
) {
  const fail = (problem: string): never => {
    throw new DefinitionError(
      `entity "${entity.name}": reference to "${reference.entity}" ${problem}`,
      {
        entity: entity.name,
      },
    );
  };
  if (reference.entity === entity.name) fail('points at itself; self references are not supported');
  const parent = byName.get(reference.entity);
  if (!parent)
    fail(`names an entity that is not registered (known: ${[...byName.keys()].join(', ')})`);
  const parentColumns = Object.values(reference.columns);
  for (const column of parentColumns) {
    if (!parent?.columnNames.includes(column)) {
      fail(`names parent column "${column}", which "${reference.entity}" does not have`);
    }
  }
  const keyCovered =
    parentColumns.length === parent?.key.length &&
    parent.key.every((column) => parentColumns.includes(column));
  if (!keyCovered)
    fail(
      `must map onto the parent's whole key (${parent?.key.join(', ')}), got (${parentColumns.join(', ')})`,
    );
}

/** Kahn's algorithm; among independent entities the given order is kept. */
function topologicalOrder<E extends AnyEntity>(definitions: readonly E[]): readonly E[] {
  const remaining = new Map(definitions.map((entity) => [entity.name, entity]));
  const ordered: E[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining.values()].find((entity) =>
      entity.references.every((reference) => !remaining.has(reference.entity)),
    );
    if (!ready)
      throw new DefinitionError(`registry: references form a cycle: ${describeCycle(remaining)}`);
    ordered.push(ready);
    remaining.delete(ready.name);
  }
  return Object.freeze(ordered);
}

function describeCycle(remaining: Map<string, AnyEntity>): string {
  // Walk parent links from any remaining entity until a name repeats.
  const path: string[] = [];
  let current = remaining.values().next().value as AnyEntity;
  while (!path.includes(current.name)) {
    path.push(current.name);
    const next = current.references
      .map((reference) => remaining.get(reference.entity))
      .find(Boolean);
    if (!next) break;
    current = next;
  }
  const start = path.indexOf(current.name);
  return [...path.slice(start), current.name].join(' → ');
}
