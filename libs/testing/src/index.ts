// @live/testing: real processes for tests (nats-server, ffmpeg, services) and helpers that wait for facts.
export * from './balancer.js';
export * from './chaos.js';
export * from './chaos-actors.js';
export * from './chaos-report.js';
export * from './chat.js';
export * from './ffmpeg.js';
export * from './fixtures.js';
export * from './gcs-emulator.js';
export * from './llhls.js';
export * from './local-platform.js';
export * from './malformed.js';
export * from './nats.js';
export * from './process.js';
export * from './restarting.js';
export * from './rtmp.js';
export * from './service.js';
export * from './wait.js';
