// @live/runtime: what every service process needs around its work: ops HTTP, metrics, the NATS services
// registration with validated operator endpoints, graceful shutdown, and an HTTP pass-through.
export * from './http-proxy.js';
export * from './lease.js';
export * from './ops-server.js';
export * from './request-target.js';
export * from './service.js';
export * from './shutdown.js';
