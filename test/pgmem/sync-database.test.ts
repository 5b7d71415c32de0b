import { describe } from 'vitest';
import { memDatabase } from '../support/pgmem.js';
import { onPool, READING_DDL, syncDatabaseSuite } from '../support/sync-database-suite.js';

describe('SyncDatabase on pg-mem', () => {
  syncDatabaseSuite(async () => onPool(memDatabase(READING_DDL).pool));
});
