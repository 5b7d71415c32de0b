/**
 * pg-mem forgets the column types a table was created with: `bigint` and `smallint` read back
 * as `integer`, `numeric(10,2)` and `real` as `float`, `varchar(5)` and `char(3)` as `text`, and
 * `information_schema.columns` puts every table in `public`. meter-sync reads a target's column
 * types to decide how to decode, check and print values, so a test database answers with the
 * types its DDL declared, as PostgreSQL's catalog would.
 */
import type { IMemoryDb } from 'pg-mem';
import { describeFromInformationSchema } from '../db/pg/sql.js';
import { ConfigurationError } from '../errors.js';

/** A column's type as PostgreSQL's catalog describes it. */
interface DeclaredType {
  /** `format_type`: `bigint`, `character varying(5)`, `numeric(10,2)`, `text[]`. */
  readonly type: string;
  /** `pg_type.typname`: `int8`, `varchar`, `_text`. */
  readonly type_name: string;
  /** `pg_type.typcategory`. */
  readonly category: string;
  readonly element_type_name: string | null;
}

/** The parts of pg-mem's statement tree (pgsql-ast-parser) read here. */
interface DataTypeNode {
  readonly name?: string;
  readonly kind?: string;
  readonly arrayOf?: DataTypeNode;
  readonly config?: readonly number[];
}
interface ColumnNode {
  readonly kind?: string;
  readonly name: { readonly name: string };
  readonly dataType?: DataTypeNode;
}
interface TableNode {
  readonly name: string;
  readonly schema?: string;
}
type Statement =
  | { readonly type: 'create table'; readonly name: TableNode; readonly columns?: ColumnNode[] }
  | { readonly type: 'drop table'; readonly names: TableNode[] }
  | {
      readonly type: 'alter table';
      readonly table: TableNode;
      readonly changes: readonly {
        readonly type: string;
        readonly column?: ColumnNode | { readonly name: string };
        readonly alter?: { readonly type: string; readonly dataType?: DataTypeNode };
      }[];
    }
  | { readonly type: string };

/** Schemas parse statements (cached) before running them; the method is not in pg-mem's types. */
interface ParsingSchema {
  parse(sql: string): Statement[];
}

// The statement meter-sync describes a table with on pg-mem, up to its two parameters, which
// pg-mem's driver inlines.
const STATEMENT = describeFromInformationSchema({ name: '' }).text;
const DESCRIBE = STATEMENT.slice(0, STATEMENT.indexOf('$1'));
const DESCRIBED_TABLE = /table_schema = '((?:[^']|'')*)' AND table_name = '((?:[^']|'')*)'/;

/**
 * Keeps the column types of every table the database's DDL creates or alters, and answers
 * meter-sync's description of a table with them. Tables created otherwise are described by
 * pg-mem as before. Refuses a `numeric` column without a scale: pg-mem would read `1.50` back
 * as `1.5`, where PostgreSQL keeps the scale it was given.
 */
export function declareColumnTypes(db: IMemoryDb): void {
  /** `schema.table` → column → type, in column order. */
  const tables = new Map<string, Map<string, DeclaredType>>();
  const schema = db.public as unknown as ParsingSchema;
  const parsed = (sql: string): Statement[] => {
    try {
      return schema.parse(sql);
    } catch {
      return []; // pg-mem reports it when it runs the statement
    }
  };

  // Only statements pg-mem ran: a CREATE TABLE that failed declares nothing.
  db.on('query', (sql) => {
    for (const statement of parsed(sql)) record(tables, statement);
  });

  db.public.interceptQueries((sql) => {
    if (!sql.startsWith(DESCRIBE)) {
      for (const statement of parsed(sql)) refuseUnscaledNumeric(statement);
      return null;
    }
    const match = DESCRIBED_TABLE.exec(sql);
    if (!match) return null;
    const [, tableSchema = '', tableName = ''] = match;
    const columns = tables.get(tableKey(unquote(tableSchema), unquote(tableName)));
    if (!columns) return null;
    return [...columns].map(([name, declared]) => ({ name, ...declared }));
  });
}

function refuseUnscaledNumeric(statement: Statement): void {
  for (const [column, dataType] of declaredColumns(statement)) {
    const scalar = dataType.arrayOf ?? dataType;
    const name = scalar.name?.toLowerCase();
    if ((name === 'numeric' || name === 'decimal') && (scalar.config ?? []).length === 0) {
      throw new ConfigurationError(
        `meter-sync/testing: column "${column}" is ${name} without a scale, which pg-mem does not keep (it reads 1.50 back as 1.5, where PostgreSQL keeps 1.50): declare numeric(precision, scale) in test DDL, or test this column on PostgreSQL`,
      );
    }
  }
}

/** The columns a statement gives a type: created, added, or altered. */
function declaredColumns(statement: Statement): [string, DataTypeNode][] {
  if (statement.type === 'create table' && 'name' in statement) {
    return (statement.columns ?? []).flatMap((column): [string, DataTypeNode][] =>
      column.kind === 'column' && column.dataType ? [[column.name.name, column.dataType]] : [],
    );
  }
  if (statement.type !== 'alter table' || !('changes' in statement)) return [];
  return statement.changes.flatMap((change): [string, DataTypeNode][] => {
    const column = change.column;
    if (!column) return [];
    const name = typeof column.name === 'string' ? column.name : column.name.name;
    const dataType =
      change.type === 'add column' && 'dataType' in column
        ? column.dataType
        : change.type === 'alter column'
          ? change.alter?.dataType
          : undefined;
    return dataType ? [[name, dataType]] : [];
  });
}

function record(tables: Map<string, Map<string, DeclaredType>>, statement: Statement): void {
  if (statement.type === 'create table' && 'name' in statement) {
    const columns = new Map<string, DeclaredType>();
    for (const [name, dataType] of declaredColumns(statement))
      columns.set(name, declaredType(dataType));
    tables.set(tableKey(statement.name.schema, statement.name.name), columns);
  } else if (statement.type === 'drop table' && 'names' in statement) {
    for (const name of statement.names) tables.delete(tableKey(name.schema, name.name));
  } else if (statement.type === 'alter table' && 'changes' in statement) {
    const columns = tables.get(tableKey(statement.table.schema, statement.table.name));
    if (!columns) return;
    for (const [name, dataType] of declaredColumns(statement))
      columns.set(name, declaredType(dataType));
    for (const change of statement.changes) {
      const column = change.column;
      if (change.type !== 'drop column' || !column) continue;
      columns.delete(typeof column.name === 'string' ? column.name : column.name.name);
    }
  }
}

const tableKey = (schema: string | undefined, name: string) => `${schema ?? 'public'}.${name}`;
const unquote = (literal: string) => literal.replace(/''/g, "'");

/** `format_type`, `typname` and `typcategory` of a declared type. */
function declaredType(node: DataTypeNode): DeclaredType {
  if (node.kind === 'array' && node.arrayOf) {
    const element = declaredType(node.arrayOf);
    return {
      type: `${element.type}[]`,
      type_name: `_${element.type_name}`,
      category: 'A',
      element_type_name: element.type_name,
    };
  }
  const name = (node.name ?? 'text').toLowerCase();
  const [first, second] = node.config ?? [];
  const scalar = (type: string, typeName: string, category: string): DeclaredType => ({
    type,
    type_name: typeName,
    category,
    element_type_name: null,
  });
  switch (name) {
    case 'bigint':
    case 'int8':
    case 'bigserial':
    case 'serial8':
      return scalar('bigint', 'int8', 'N');
    case 'integer':
    case 'int':
    case 'int4':
    case 'serial':
    case 'serial4':
      return scalar('integer', 'int4', 'N');
    case 'smallint':
    case 'int2':
    case 'smallserial':
    case 'serial2':
      return scalar('smallint', 'int2', 'N');
    case 'real':
    case 'float4':
      return scalar('real', 'float4', 'N');
    case 'double precision':
    case 'float8':
    case 'float':
      return scalar('double precision', 'float8', 'N');
    case 'numeric':
    case 'decimal':
      return scalar(
        first === undefined ? 'numeric' : `numeric(${first},${second ?? 0})`,
        'numeric',
        'N',
      );
    case 'varchar':
    case 'character varying':
      return scalar(
        first === undefined ? 'character varying' : `character varying(${first})`,
        'varchar',
        'S',
      );
    case 'char':
    case 'character':
    case 'bpchar':
      return scalar(`character(${first ?? 1})`, 'bpchar', 'S');
    case 'bool':
    case 'boolean':
      return scalar('boolean', 'bool', 'B');
    case 'timestamptz':
    case 'timestamp with time zone':
      return scalar('timestamp with time zone', 'timestamptz', 'D');
    case 'timestamp':
    case 'timestamp without time zone':
      return scalar('timestamp without time zone', 'timestamp', 'D');
    case 'date':
      return scalar('date', 'date', 'D');
    default:
      return scalar(name, name, name === 'text' || name === 'citext' ? 'S' : 'U');
  }
}
