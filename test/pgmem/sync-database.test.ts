import { describe } from 'vitest';
import { memDatabase } from '../support/pgmem.js';
import { READING_DDL, syncDatabaseSuite } from '../support/sync-database-suite.js';

describe('SyncDatabase on pg-mem', () => {
  syncDatabaseSuite(async () => memDatabase(READING_DDL).pool);
});
