export type { SyncAgentEvent, SyncAgentEventOf, SyncAgentEventType } from './events.js';
export {
  AgentStoppedError,
  createSyncAgent,
  type SyncAgent,
  type SyncAgentOptions,
  type SyncAgentStatus,
} from './sync-agent.js';
