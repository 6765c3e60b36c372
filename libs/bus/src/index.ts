// @live/bus: NATS connection, provisioning, validated publish/consume, following streams, dead letters.
export type { NatsConnection } from '@nats-io/nats-core';
export * from './codec.js';
export * from './connect.js';
export * from './consume.js';
export * from './deadletter.js';
export * from './follow.js';
export * from './kv-watch.js';
export * from './provision.js';
export * from './publish.js';
export * from './request.js';
export * from './retry.js';
