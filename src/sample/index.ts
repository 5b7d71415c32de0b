export { clientSystemSchemaSql } from './client-system-schema.js';
export { type SeedTarget, seedClientSystem } from './seed.js';
