// @live/contracts: the one source of truth for subjects, names and payload schemas shared by all services.
export * from './chat.js';
export * from './control.js';
export * from './events.js';
export * from './health.js';
export * from './jetstream.js';
export * from './kv.js';
export * from './local.js';
export * from './media.js';
export * from './subjects.js';
