/**
 * COPY in PostgreSQL's text format, through pg-copy-streams (node-postgres clients only): rows
 * out of the source in bulk, rows into the target in bulk. Several times cheaper per row than a
 * cursor or a statement with array parameters, for the rows of a table that are all new.
 */
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { PgClient } from './pool.js';

interface CopyCapableClient {
  query<T>(submittable: T): T;
  connection?: { stream?: { on?: unknown; listeners?: unknown } };
}

/** Whether the client is a node-postgres client that pg-copy-streams can drive. */
export function supportsCopy(client: PgClient): boolean {
  const stream = (client as unknown as CopyCapableClient).connection?.stream;
  return typeof stream?.on === 'function' && typeof stream.listeners === 'function';
}

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** A field of COPY's text format: `\N` is NULL, backslash escapes are undone. */
function field(text: string): string | null {
  if (text === '\\N') return null;
  if (!text.includes('\\')) return text;
  return text.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, sequence: string) => {
    if (sequence.length === 1 && !/[0-7]/.test(sequence)) return ESCAPES[sequence] ?? sequence;
    const code = sequence.startsWith('x')
      ? Number.parseInt(sequence.slice(1), 16)
      : Number.parseInt(sequence, 8);
    return String.fromCharCode(code);
  });
}

/**
 * The rows of `COPY (…) TO STDOUT` (text format), each as its fields, a batch per network chunk.
 * Memory holds a chunk. Newlines and tabs inside values arrive escaped, so rows split cleanly.
 */
export async function* copyOutRows(
  client: PgClient,
  copyOutSql: string,
): AsyncGenerator<(string | null)[][]> {
  const out = (client as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable;
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of out) {
    const lines = (rest + decoder.write(chunk as Buffer)).split('\n');
    rest = lines.pop() ?? '';
    if (lines.length > 0) yield lines.map((line) => line.split('\t').map(field));
  }
  rest += decoder.end();
  if (rest !== '') yield [rest.split('\t').map(field)];
}

/** The raw bytes of `COPY (…) TO STDOUT`, chunk by chunk. */
export function copyOutBytes(client: PgClient, copyOutSql: string): AsyncIterable<Uint8Array> {
  return (client as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable;
}

/**
 * Streams bytes into `COPY … FROM STDIN`; resolves with the rows written. The input is always
 * read to its end, even after the COPY failed, so a COPY it comes from is never left half read.
 */
export async function copyInBytes(
  client: PgClient,
  copyInSql: string,
  bytes: AsyncIterable<Uint8Array>,
): Promise<number> {
  const into = (client as unknown as CopyCapableClient).query(copyFrom(copyInSql)) as Writable & {
    rowCount: number;
  };
  let failure: unknown;
  const failed = new Promise<void>((resolve) => {
    into.once('error', (error) => {
      failure ??= error;
      resolve();
    });
  });
  const finished = new Promise<void>((resolve) => into.once('finish', resolve));
  try {
    for await (const chunk of bytes) {
      if (failure !== undefined) continue;
      if (!into.write(chunk)) {
        await Promise.race([new Promise((resolve) => into.once('drain', resolve)), failed]);
      }
    }
  } catch (error) {
    // The input failed (the source's read): abort the COPY so the connection leaves COPY mode.
    if (failure === undefined) {
      into.destroy(error instanceof Error ? error : new Error(String(error)));
      await failed;
    }
    throw error;
  }
  if (failure === undefined) into.end();
  await Promise.race([finished, failed]);
  if (failure !== undefined) throw failure;
  return into.rowCount;
}

/** The characters COPY's text format escapes: tested for, then replaced. */
const ESCAPED = /[\\\n\r\t]/;
const ESCAPED_ALL = new RegExp(ESCAPED.source, 'g');

/** A value as a field of COPY's text format. */
function copyField(value: string | null): string {
  if (value === null) return '\\N';
  // Most values hold none: tested first, they are not rebuilt.
  if (!ESCAPED.test(value)) return value;
  return value.replace(ESCAPED_ALL, (c) =>
    c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t',
  );
}

/** Writes rows with `COPY … FROM STDIN` (text format); resolves with the rows written. */
export async function copyInRows(
  client: PgClient,
  copyInSql: string,
  rows: readonly (readonly (string | null)[])[],
): Promise<number> {
  const into = (client as unknown as CopyCapableClient).query(copyFrom(copyInSql)) as Writable & {
    rowCount: number;
  };
  const done = new Promise<void>((resolve, reject) => {
    into.on('finish', resolve);
    into.on('error', reject);
  });
  const CHUNK = 1000;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const text = rows
      .slice(i, i + CHUNK)
      .map((row) => `${row.map(copyField).join('\t')}\n`)
      .join('');
    if (!into.write(text)) await new Promise((resolve) => into.once('drain', resolve));
  }
  into.end();
  await done;
  return into.rowCount;
}

const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * The fields of the one row of `COPY (SELECT <bytea>, …) TO STDOUT (FORMAT binary)`, raw: a
 * NULL as no bytes. One value per field travels as one message, without the text format's
 * escapes, and so costs the client next to nothing, however many rows an aggregate folded in.
 * Each field is copied into a buffer of its own as its bytes arrive (its length comes first),
 * so memory holds the fields and a network chunk, and each field starts a buffer, where 64-bit
 * words can be read in place.
 */
export async function copyOutByteas(client: PgClient, copyOutSql: string): Promise<Uint8Array[]> {
  const out = (client as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable;
  const row = new BinaryRowReader();
  for await (const chunk of out) row.push(chunk as Buffer);
  return row.fields();
}

/** What `BinaryRowReader` reads next: a part of fixed size, or a field's bytes. */
type BinaryPart = 'header' | 'extension' | 'count' | 'length' | 'field' | 'trailer' | 'end';

/** Reads the one row of a binary COPY as its bytes arrive, in chunks cut anywhere. */
class BinaryRowReader {
  private part: BinaryPart = 'header';
  /** Bytes of the part being read, where it is of fixed size. */
  private held: Buffer = Buffer.alloc(0);
  private needed = BINARY_SIGNATURE.length + 8;
  private count = 0;
  private field = new Uint8Array();
  private filled = 0;
  private readonly read: Uint8Array[] = [];

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.part === 'end') throw unexpectedCopy('more than one row');
      if (this.part === 'field') {
        const taken = Math.min(chunk.length - at, this.field.length - this.filled);
        this.field.set(chunk.subarray(at, at + taken), this.filled);
        this.filled += taken;
        at += taken;
        if (this.filled === this.field.length) this.fieldRead();
        continue;
      }
      const taken = Math.min(chunk.length - at, this.needed - this.held.length);
      this.held = Buffer.concat([this.held, chunk.subarray(at, at + taken)]);
      at += taken;
      if (this.held.length === this.needed) this.partRead();
    }
  }

  fields(): Uint8Array[] {
    if (this.part !== 'end')
      throw unexpectedCopy(this.part === 'header' ? 'no binary header' : 'a row cut short');
    return this.read;
  }

  private next(part: BinaryPart, needed: number): void {
    this.part = part;
    this.needed = needed;
    this.held = Buffer.alloc(0);
    // A part of no bytes (an empty header extension) is read at once.
    if (needed === 0 && part !== 'field' && part !== 'end') this.partRead();
  }

  private partRead(): void {
    const bytes = this.held;
    switch (this.part) {
      case 'header':
        if (!bytes.subarray(0, BINARY_SIGNATURE.length).equals(BINARY_SIGNATURE))
          throw unexpectedCopy('no binary header');
        // Signature, flags, then the header extension's length.
        this.next('extension', bytes.readUInt32BE(BINARY_SIGNATURE.length + 4));
        break;
      case 'extension':
        this.next('count', 2);
        break;
      case 'count':
        this.count = bytes.readInt16BE(0);
        if (this.count < 1) throw unexpectedCopy('no row');
        this.next('length', 4);
        break;
      case 'length': {
        const length = bytes.readInt32BE(0);
        this.field = new Uint8Array(Math.max(0, length));
        this.filled = 0;
        this.next('field', 0);
        if (length <= 0) this.fieldRead();
        break;
      }
      case 'trailer':
        if (bytes.readInt16BE(0) !== -1) throw unexpectedCopy('more than one row');
        this.next('end', 0);
        break;
      default:
        throw new Error(`binary COPY reader: no part ${this.part} of fixed size`);
    }
  }

  private fieldRead(): void {
    this.read.push(this.field);
    if (this.read.length < this.count) this.next('length', 4);
    else this.next('trailer', 2);
  }
}

const unexpectedCopy = (what: string) =>
  new Error(`COPY (FORMAT binary) sent ${what}, not the one row of byte strings expected`);
