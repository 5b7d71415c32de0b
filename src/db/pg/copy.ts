/**
 * COPY between two connections: the source's `COPY … TO STDOUT` streamed straight into the
 * target's `COPY … FROM STDIN`, so rows pass through as bytes, in constant memory, without being
 * parsed in JavaScript. Uses pg-copy-streams, which needs a node-postgres client.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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

/** Streams `COPY (…) TO STDOUT` from one client into `COPY … FROM STDIN` on another. */
export async function pipeCopy(
  from: PgClient,
  copyOutSql: string,
  to: PgClient,
  copyInSql: string,
  onChunk?: (bytes: number) => void,
): Promise<{ rows: number; bytes: number }> {
  const out = (from as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable & {
    rowCount: number;
  };
  const into = (to as unknown as CopyCapableClient).query(copyFrom(copyInSql)) as Writable & {
    rowCount: number;
  };
  let bytes = 0;
  out.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    onChunk?.(bytes);
  });
  await pipeline(out, into);
  return { rows: into.rowCount, bytes };
}

/**
 * The rows of `COPY (…) TO STDOUT` as arrays of fields, a batch per network chunk, for rows whose
 * fields need no unescaping (integers, hashes). Constant memory: one chunk at a time.
 */
export async function* copyOutFields(
  client: PgClient,
  copyOutSql: string,
): AsyncGenerator<string[][]> {
  const out = (client as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable;
  let rest = '';
  for await (const chunk of out) {
    const text = rest + (chunk as Buffer).toString('utf8');
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    if (lines.length > 0) yield lines.map((line) => line.split('\t'));
  }
  if (rest !== '') yield [rest.split('\t')];
}

const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * The fields of the first row of `COPY (…) TO STDOUT (FORMAT binary)`, as raw bytes. COPY is the
 * one path on which node-postgres hands back bytes untouched (its binary result format decodes
 * field values as UTF-8 text first), so a bytea arrives at its own size, not hex-doubled.
 */
export async function copyOutBinaryRow(
  client: PgClient,
  copyOutSql: string,
): Promise<(Buffer | null)[]> {
  const out = (client as unknown as CopyCapableClient).query(copyTo(copyOutSql)) as Readable;
  const chunks: Buffer[] = [];
  for await (const chunk of out) chunks.push(chunk as Buffer);
  const data = Buffer.concat(chunks);
  if (!data.subarray(0, BINARY_SIGNATURE.length).equals(BINARY_SIGNATURE)) {
    throw new Error('COPY binary output has no PGCOPY signature');
  }
  let offset = BINARY_SIGNATURE.length + 4;
  offset += 4 + data.readInt32BE(offset);
  const count = data.readInt16BE(offset);
  offset += 2;
  const fields: (Buffer | null)[] = [];
  for (let i = 0; i < count; i++) {
    const length = data.readInt32BE(offset);
    offset += 4;
    fields.push(length < 0 ? null : data.subarray(offset, offset + length));
    offset += Math.max(0, length);
  }
  return fields;
}
