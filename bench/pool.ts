/** What the benchmarks share. */
import pg from 'pg';

/** Runs `work` with a one-connection pool on `url`, closed afterwards. */
export async function withPool<T>(url: string, work: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}
