import type * as core from 'zod/v4/core';

/**
 * The zod object schema that describes an entity's synced columns: `z.object({ … })` from
 * zod 4 (`'zod'`) or from zod 3.25's `'zod/v4'`. Typed against zod's core (`zod/v4/core`), which
 * both ship, so the schema is the project's own zod.
 */
export type ColumnsSchema = core.$ZodObject;

/** The names of the columns of a columns schema. */
export type ColumnName<S extends ColumnsSchema> = Extract<keyof S['_zod']['def']['shape'], string>;

/** A possibly schema-qualified table name. */
export interface TableName {
  /** The schema; absent means the connection's `search_path` decides. */
  readonly schema?: string | undefined;
  readonly name: string;
}

/** How to read an entity on the source, as given to `defineEntity`. */
export type SourceInput<C extends string> =
  | {
      /** The source table, when it differs from the target table. */
      readonly table?: string | TableName;
      /** Target column → source column, for the columns whose names differ. */
      readonly columns?: { readonly [K in C]?: string };
      readonly query?: never;
    }
  | {
      /**
       * A read-only SELECT producing one column per synced column (by target name). When the
       * entity is tenant-scoped it must filter by the tenant with the parameter `$1`.
       */
      readonly query: string;
      readonly table?: never;
      readonly columns?: never;
    };

/** The normalised source description of an entity. */
export type EntitySource =
  | {
      readonly kind: 'table';
      readonly table: TableName;
      readonly columns: Readonly<Record<string, string>>;
    }
  | { readonly kind: 'query'; readonly query: string };

/** A reference from an entity's columns to another entity's key, as given to `defineEntity`. */
export interface ReferenceInput<C extends string> {
  /** The name of the referenced (parent) entity. */
  readonly entity: string;
  /** This entity's column → the parent's key column. Must cover the parent's whole key. */
  readonly columns: { readonly [K in C]?: string };
}

/** A reference, normalised: pairs of (child column, parent column) in the parent's key order. */
export interface EntityReference {
  readonly entity: string;
  readonly columns: Readonly<Record<string, string>>;
}

/** What happens to a target row whose key no longer exists on the source. */
export type OnMissing<Row> = 'delete' | { readonly set: Readonly<Partial<Row>> };

/** An entity definition: everything the engine needs to sync one table. Create with `defineEntity`. */
export interface Entity<
  Name extends string = string,
  S extends ColumnsSchema = ColumnsSchema,
  K extends string = string,
  T extends string | undefined = string | undefined,
> {
  /** Unique name, used in results, logs and references. */
  readonly name: Name;
  /** The table on the target (sync database). */
  readonly table: TableName;
  /** The synced columns; the row type is inferred from it. */
  readonly columns: S;
  /** The synced column names, in schema order. */
  readonly columnNames: readonly ColumnName<S>[];
  /** The key columns (one or several). */
  readonly key: readonly K[];
  /** The column scoping rows to a tenant; `undefined` for a global entity. */
  readonly tenantColumn: T;
  /** How rows are read on the source. */
  readonly source: EntitySource;
  /** References to parent entities. */
  readonly references: readonly EntityReference[];
  /** What happens to rows missing on the source. */
  readonly onMissing: OnMissing<core.output<S>>;
  /** What a source row that breaks the definition does: fail the entity, or be skipped. */
  readonly invalidRows: 'fail' | 'skip';
}

/** Any entity definition. */
// biome-ignore lint/suspicious/noExplicitAny: the widest entity type must accept every schema.
export type AnyEntity = Entity<string, any, string, string | undefined>;

/** The row type of an entity. */
export type RowOf<E extends AnyEntity> = core.output<E['columns']>;

/** The key type of an entity: its key columns and their values. */
export type KeyOf<E extends AnyEntity> = Pick<RowOf<E>, E['key'][number]>;

/** The name of an entity. */
export type NameOf<E extends AnyEntity> = E['name'];
