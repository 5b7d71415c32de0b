import type { TestProject } from 'vitest/node';
import { startPostgres } from '../../scripts/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser connection string of the throwaway PostgreSQL server (database `postgres`). */
    postgresUrl: string;
  }
}

/** Starts one real PostgreSQL for the whole run; every test file makes its own databases on it. */
export default async function setup(project: TestProject) {
  const server = await startPostgres();
  project.provide('postgresUrl', server.url());
  return () => server.stop();
}
