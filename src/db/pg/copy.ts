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
