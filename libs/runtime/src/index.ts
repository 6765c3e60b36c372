// @live/runtime: what every service process needs around its work: ops HTTP, metrics, the NATS services
// registration with validated operator endpoints, and graceful shutdown.
export * from './lease.js';
export * from './ops-server.js';
export * from './service.js';
export * from './shutdown.js';
