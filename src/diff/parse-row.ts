/**
 * The one place where a source row is judged: decoded for the entity's schema, validated, and
 * turned into the text values to write. Every row problem (schema violation, NULL or repeated
 * key, a row outside the tenant, a value too long for its column) is a `DataError` worded here.
 */
import type { z } from 'zod/v4';
import type { TableDescription } from '../db/types.js';
import { acceptsEveryValue, isExactColumn } from '../entity/columns.js';
import type { AnyEntity } from '../entity/types.js';
import { DataError } from '../errors.js';
import {
  type ColumnDecoder,
  columnDecoder,
  decodedForms,
  encodeValue,
  sameValue,
  type TextValue,
  typeNameOf,
} from './decode.js';

/** A source row that passed: its key texts, the texts to write, and the schema's output. */
export interface ParsedRow {
  readonly key: readonly string[];
  readonly values: readonly TextValue[];
  readonly row: Readonly<Record<string, unknown>>;
}

interface ColumnRule {
  readonly name: string;
  readonly schema: z.ZodType;
  readonly decoder: ColumnDecoder;
  /** `col.*` schemas read PostgreSQL's text themselves, and only normalise it. */
  readonly exact: boolean;
  /** Whether the schema accepts every non-NULL value of the column's type (see `skipImplied`). */
  readonly implied: boolean;
  readonly info: TableDescription extends ReadonlyMap<string, infer I> ? I | undefined : never;
  /** Characters the target column holds (`varchar(n)`, `char(n)`). */
  readonly limit: number | undefined;
  /** The form index that last passed: tried first. */
  preferred: number;
}

/** The schema output of a row the parser did not run the schema on (a sync does not use it). */
const NO_OUTPUT: Readonly<Record<string, unknown>> = Object.freeze({});

/** Parses rows of one entity; build once per entity and run. */
export interface RowParser {
  parse(values: readonly TextValue[]): ParsedRow | DataError;
  /**
   * Whether every column's schema accepts every value of its type (as `skipImplied` allows):
   * then a row is valid exactly when its key is complete, its tenant is the run's and the
   * `required` columns hold a value.
   */
  readonly settled: boolean;
  /** The columns whose schema refuses NULL. */
  readonly required: readonly string[];
  /** A key as the schema reads it (`{ id: 5n }`), for errors; text where the schema refuses it. */
  keyOf(keyTexts: readonly (string | null)[]): Record<string, unknown>;
}

/**
 * A parser for `entity`'s source rows (texts in `entity.columnNames` order), decoding by the
 * target's column types. `tenant` is the run's tenant as text: a row of another tenant fails.
 */
export function rowParser(
  entity: AnyEntity,
  description: TableDescription,
  tenant: string | undefined,
  side: 'source' | 'stored' = 'source',
  /**
   * Skip the schema where it accepts every value of the column's type (`col.int()` on an integer
   * column): the row is as valid, and the schema's output, unused by a sync, is not computed.
   */
  skipImplied = false,
): RowParser {
  const shape = (entity.columns as z.ZodObject).shape as Record<string, z.ZodType>;
  const rules: ColumnRule[] = entity.columnNames.map((name: string) => {
    const info = description.get(name);
    return {
      name,
      schema: shape[name] as z.ZodType,
      decoder: columnDecoder(info),
      exact: isExactColumn(shape[name] as z.ZodType),
      implied: skipImplied && acceptsEveryValue(shape[name] as z.ZodType, typeNameOf(info)),
      info,
      limit: characterLimit(info?.type),
      preferred: 0,
    };
  });
  const keyIndexes = entity.key.map((column) => entity.columnNames.indexOf(column));
  const tenantIndex =
    entity.tenantColumn === undefined ? -1 : entity.columnNames.indexOf(entity.tenantColumn);
  const objectChecks = ((entity.columns as z.ZodObject)._zod.def.checks ?? []).length > 0;

  // When every column's schema accepts every value of its type (and a NULL where the value is
  // NULL), a row is valid as it stands and is written as it came: no schema runs.
  const nullAccepted = rules.map(
    (rule) => rule.schema.safeParse(null).success && rule.schema.parse(null) === null,
  );
  const settled =
    skipImplied && !objectChecks && rules.every((rule) => rule.implied && rule.limit === undefined);
  const settledRow = (values: readonly TextValue[]) => {
    if (tenantIndex >= 0 && tenant !== undefined && values[tenantIndex] !== tenant) return false;
    for (let i = 0; i < rules.length; i++) if (values[i] === null && !nullAccepted[i]) return false;
    for (const index of keyIndexes) if (values[index] === null) return false;
    return true;
  };
  const keyRules = entity.key.map(
    (column) => rules.find((rule) => rule.name === column) as ColumnRule,
  );
  const keyOf = (keyTexts: readonly (string | null)[]) =>
    Object.fromEntries(
      keyRules.map((rule, i) => {
        const text = keyTexts[i] ?? null;
        const parsed = text === null ? undefined : parseColumn(rule, text, false);
        return [
          rule.name,
          parsed === undefined || typeof parsed === 'string' ? text : parsed.output,
        ];
      }),
    );
  return {
    keyOf,
    settled,
    required: rules.filter((_, i) => !nullAccepted[i]).map((rule) => rule.name),
    parse(values) {
      if (settled && settledRow(values)) {
        return { key: keyIndexes.map((index) => values[index] as string), values, row: NO_OUTPUT };
      }
      const keyTexts = keyIndexes.map((index) => values[index] ?? null);
      const at = (column?: string) => ({ entity, side, keyTexts, column, key: keyOf(keyTexts) });
      const nullKey = keyIndexes.find((index) => values[index] === null);
      if (nullKey !== undefined) return nullKeyError(entity, 1, entity.columnNames[nullKey]);
      if (tenantIndex >= 0 && tenant !== undefined && values[tenantIndex] !== tenant) {
        return rowError(
          { ...at(entity.tenantColumn), named: false },
          `has ${entity.tenantColumn}=${values[tenantIndex] ?? 'NULL'}, outside the run's tenant ${tenant}; the source query must filter by $1`,
        );
      }
      const row: Record<string, unknown> = {};
      const inputs: Record<string, unknown> = {};
      const written: TextValue[] = [];
      for (const [index, rule] of rules.entries()) {
        const text = values[index] ?? null;
        const outcome = parseColumn(rule, text);
        if (typeof outcome === 'string') return rowError(at(rule.name), outcome);
        row[rule.name] = outcome.output;
        inputs[rule.name] = outcome.input;
        if (outcome.write !== null && rule.limit !== undefined) {
          const length = [...outcome.write.replace(/ +$/, '')].length;
          if (length > rule.limit)
            return rowError(
              at(rule.name),
              `holds ${[...outcome.write].length} characters, more than the ${rule.limit} its target column allows (widen the column)`,
            );
        }
        written.push(outcome.write);
      }
      if (objectChecks) {
        const whole = (entity.columns as z.ZodObject).safeParse(inputs);
        if (!whole.success) return rowError(at(), issueText(whole.error));
      }
      return { key: keyTexts as string[], values: written, row };
    },
  };
}

function parseColumn(
  rule: ColumnRule,
  text: TextValue,
  /** Whether a schema that accepts every value of the type may be skipped. */
  skippable = true,
): { input: unknown; output: unknown; write: TextValue } | string {
  if (text === null) {
    for (const empty of [null, undefined]) {
      const parsed = rule.schema.safeParse(empty);
      if (parsed.success) {
        const output = parsed.data;
        const write =
          output === null || output === undefined ? null : encodeValue(output, rule.info);
        return { input: empty, output, write };
      }
    }
    return 'is NULL, which the schema does not allow';
  }
  if (rule.implied && skippable) return { input: text, output: text, write: text };
  if (rule.exact) {
    const parsed = rule.schema.safeParse(text);
    return parsed.success
      ? { input: text, output: parsed.data, write: text }
      : issueText(parsed.error);
  }
  const forms = decodedForms(rule.decoder, text);
  const order = forms.map((_, i) => i);
  if (rule.preferred < forms.length) {
    order.splice(rule.preferred, 1);
    order.unshift(rule.preferred);
  }
  let firstProblem: string | undefined;
  for (const index of order) {
    const input = forms[index];
    const parsed = rule.schema.safeParse(input);
    if (parsed.success) {
      rule.preferred = index;
      const output = parsed.data;
      return {
        input,
        output,
        write: sameValue(output, input) ? text : encodeValue(output, rule.info),
      };
    }
    if (index === 0 || firstProblem === undefined) firstProblem = issueText(parsed.error);
  }
  if (rule.decoder.integer && /^-?\d+$/.test(text) && !Number.isSafeInteger(Number(text))) {
    const asNumber = rule.schema.safeParse(Number(text));
    if (asNumber.success)
      return `holds ${text}, beyond 2^53: a JS number cannot hold it exactly (use z.bigint() or z.string() for this column)`;
  }
  return `${firstProblem ?? 'is not accepted by the schema'} (value ${preview(text)})`;
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'is not accepted by the schema';
  const path = issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  return `fails the schema${path}: ${issue.message}`;
}

function preview(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

function characterLimit(type: string | undefined): number | undefined {
  const limit = /^(?:character varying|character|varchar|char|bpchar)\((\d+)\)$/.exec(
    type ?? '',
  )?.[1];
  return limit === undefined ? undefined : Number(limit);
}

/** The key of a row as `column=value` pairs, values as their text. */
export function keyObject(entity: AnyEntity, keyTexts: readonly (string | null)[]) {
  return Object.fromEntries(entity.key.map((column, i) => [column, keyTexts[i] ?? null]));
}

/** `(a=1, b="x")`: a key for messages and change lists; numbers bare, other text quoted. */
export function describeKeyTexts(entity: AnyEntity, keyTexts: readonly (string | null)[]): string {
  const pairs = entity.key.map((column, i) => {
    const text = keyTexts[i] ?? null;
    const shown =
      text === null ? 'NULL' : /^-?\d+(\.\d+)?$/.test(text) ? text : JSON.stringify(text);
    return `${column}=${shown}`;
  });
  return `(${pairs.join(', ')})`;
}

function rowError(
  where: {
    entity: AnyEntity;
    side: 'source' | 'stored';
    keyTexts: readonly (string | null)[];
    column?: string | undefined;
    key: Record<string, unknown>;
    /** Whether the message names the column (a tenant mismatch says it in its own words). */
    named?: boolean;
  },
  problem: string,
): DataError {
  const { entity, keyTexts, column, key } = where;
  const subject = column === undefined || where.named === false ? '' : ` column "${column}"`;
  return new DataError(
    `${entity.name}: ${where.side} row ${describeKeyTexts(entity, keyTexts)}${subject} ${problem}`,
    {
      entity: entity.name,
      key,
      column,
    },
  );
}

/** Source rows whose key has a NULL: they cannot be matched to a target row. */
export function nullKeyError(entity: AnyEntity, rows: number, column?: string): DataError {
  const key = Object.fromEntries(entity.key.map((c) => [c, null]));
  return new DataError(
    `${entity.name}: the source returned ${rows} row(s) with NULL in the key (${entity.key.join(', ')}); every key column must have a value`,
    {
      entity: entity.name,
      key,
      column: column ?? (entity.key.length === 1 ? entity.key[0] : undefined),
    },
  );
}

/** A key the source returns more than once. */
export function repeatedKeyError(
  entity: AnyEntity,
  keyTexts: readonly string[],
  key: Record<string, unknown> = keyObject(entity, keyTexts),
): DataError {
  return new DataError(
    `${entity.name}: the source returned key ${describeKeyTexts(entity, keyTexts)} more than once; the key (${entity.key.join(', ')}) must be unique`,
    { entity: entity.name, key },
  );
}
