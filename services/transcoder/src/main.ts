// Transcoder worker composition root: config -> logger -> NATS -> storage -> worker -> service.
import { mkdirSync } from 'node:fs';
import { connectBus, OrderedPublisher, provision } from '@live/bus';
import { loadConfig } from '@live/config';
import { serviceNames } from '@live/contracts';
import { createLogger } from '@live/log';
import { createMetrics, installShutdown, registerService, startOpsServer } from '@live/runtime';
import { createStorage } from '@live/storage';
import { jetstream } from '@nats-io/jetstream';
import { Gauge } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { transcoderConfigSchema } from './config.js';
import { warmUpFfmpeg } from './ffmpeg/ffmpeg-process.js';
import { PartServer } from './worker/part-server.js';
import { Worker } from './worker/worker.js';

async function main(): Promise<void> {
  const config = loadConfig(transcoderConfigSchema);
  const logger = createLogger({ service: 'transcoder', level: config.LOG_LEVEL }).child({
    workerId: config.TRANSCODER_WORKER_ID,
  });
  const metrics = createMetrics('transcoder');
  let worker: Worker | undefined;
  new Gauge({
    name: 'transcoder_busy_slots',
    help: 'slots transcoding a stream (the autoscaler keeps the average below a target, so standbys stay free)',
    registers: [metrics],
    collect() {
      this.set(worker ? worker.jobs.size : 0);
    },
  });
  new Gauge({
    name: 'transcoder_free_slots',
    help: 'slots free for new streams',
    registers: [metrics],
    collect() {
      this.set(worker?.free ?? 0);
    },
  });
  new Gauge({
    name: 'transcoder_ll_watched_streams',
    help: 'streams whose LL-HLS part events this worker publishes (an origin watches them in LL, or just started)',
    registers: [metrics],
    collect() {
      this.set(worker ? [...worker.jobs.values()].filter((job) => job.partsWanted).length : 0);
    },
  });
  const ops = await startOpsServer({
    port: config.TRANSCODER_OPS_PORT,
    logger,
    metrics,
    notReadyReason: () => (worker ? null : 'starting'),
    routes: {
      // Kubernetes' preStop hook: returns once every stream has moved away (make-before-break) or the drain
      // timed out; the SIGTERM that follows finds nothing left to move.
      '/drain': async () => {
        if (!worker) return 'not started';
        await worker.drain(config.TRANSCODER_DRAIN_TIMEOUT_MS);
        return `drained (${worker.jobs.size} stream(s) still running)`;
      },
    },
  });
  mkdirSync(config.TRANSCODER_WORK_DIR, { recursive: true });
  await warmUpFfmpeg();
  const parts = new PartServer({
    advertisedHost: config.TRANSCODER_PARTS_HOST,
    bindHost: config.TRANSCODER_PARTS_BIND,
    port: config.TRANSCODER_PARTS_PORT,
    keepMs: config.TRANSCODER_PARTS_KEEP_MS,
    logger,
  });
  await parts.start();
  const storage = createStorage(config);
  const nc = await connectBus({
    servers: config.NATS_URL,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    name: `transcoder ${config.TRANSCODER_WORKER_ID}`,
    logger,
  });
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  const js = jetstream(nc);
  const events = new OrderedPublisher({ js, logger: logger.child({ component: 'events' }) });
  const media = new OrderedPublisher({
    js,
    logger: logger.child({ component: 'media' }),
    giveUpAfterMs: 10_000,
  });
  const w = new Worker({
    nc,
    events,
    media,
    storage,
    logger,
    workerId: config.TRANSCODER_WORKER_ID,
    slots: config.TRANSCODER_SLOTS,
    version: packageJson.version,
    workRoot: config.TRANSCODER_WORK_DIR,
    segmentSeconds: config.TRANSCODER_SEGMENT_SECONDS,
    partMs: config.TRANSCODER_PART_MS,
    parts,
    preset: config.TRANSCODER_PRESET,
    heartbeatMs: config.TRANSCODER_HEARTBEAT_MS,
    fenceMs: config.TRANSCODER_FENCE_MS,
    handoverMaxMs: config.TRANSCODER_HANDOVER_MAX_MS,
  });
  const service = await registerService(nc, logger, {
    name: serviceNames.transcoder,
    version: packageJson.version,
    description: 'transcoder worker: ffmpeg ABR ladder to CMAF segments and LL-HLS parts',
    metadata: { workerId: config.TRANSCODER_WORKER_ID, slots: String(config.TRANSCODER_SLOTS) },
    endpoints: w.endpoints(),
  });
  await w.register();
  await w.watchAssignments();
  worker = w;
  logger.info({ slots: config.TRANSCODER_SLOTS }, 'worker ready');

  installShutdown(logger, [
    // Make-before-break first, while the revoke endpoint still answers the supervisor.
    {
      name: 'drain',
      run: () => w.drain(config.TRANSCODER_DRAIN_TIMEOUT_MS),
      timeoutMs: config.TRANSCODER_DRAIN_TIMEOUT_MS + 1000,
    },
    { name: 'nats service', run: () => service.stop().then(() => undefined) },
    { name: 'jobs', run: () => w.stopAll(), timeoutMs: 8000 },
    { name: 'media events', run: () => media.flush(3000) },
    { name: 'events', run: () => events.flush(3000) },
    { name: 'unregister', run: () => w.unregister() },
    { name: 'nats', run: () => nc.drain() },
    { name: 'part server', run: () => parts.close() },
    { name: 'ops http', run: () => ops.close() },
  ]);
}

main().catch((error: unknown) => {
  process.stderr.write(`transcoder failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
