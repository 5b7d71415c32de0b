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

/** A value as a field of COPY's text format. */
function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\n\r\t]/g, (c) =>
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
 */
export async function copyOutByteas(client: PgClient, copyOutSql: string): Promise<Uint8Array[]> {
  const out = (client as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable;
  const chunks: Buffer[] = [];
  for await (const chunk of out) chunks.push(chunk as Buffer);
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const head = Buffer.concat(chunks, Math.min(total, 19));
  const unexpected = (what: string) =>
    new Error(`COPY (FORMAT binary) sent ${what}, not the one row of byte strings expected`);
  if (head.length < 19 || !head.subarray(0, 11).equals(BINARY_SIGNATURE))
    throw unexpected('no binary header');
  // Signature, flags, then the header extension and its length.
  let at = 19 + head.readUInt32BE(15);
  // The first field starts on an 8-byte boundary, where 64-bit words can be read in place.
  const pad = (8 - ((at + 6) % 8)) % 8;
  const data = Buffer.allocUnsafeSlow(pad + total).subarray(pad);
  let filled = 0;
  for (const chunk of chunks) {
    data.set(chunk, filled);
    filled += chunk.length;
  }
  const count = data.readInt16BE(at);
  at += 2;
  if (count < 1) throw unexpected('no row');
  const fields: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const length = data.readInt32BE(at);
    at += 4;
    fields.push(length < 0 ? new Uint8Array() : data.subarray(at, at + length));
    at += Math.max(0, length);
  }
  if (data.readInt16BE(at) !== -1) throw unexpected('more than one row');
  return fields;
}
