// Supervisor composition root: config -> logger -> NATS -> worker pool -> assigner -> lifecycle consumer.
import { connectBus, consume, OrderedPublisher, provision } from '@live/bus';
import { loadConfig } from '@live/config';
import { lifecycleEvent, serviceNames, streams, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import { createMetrics, installShutdown, LeaderLease, registerService, startOpsServer } from '@live/runtime';
import { jetstream } from '@nats-io/jetstream';
import { Counter } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { Assigner } from './assigner.js';
import { supervisorConfigSchema } from './config.js';
import { StallDetector } from './stall-detector.js';
import { WorkerPool } from './worker-pool.js';

async function main(): Promise<void> {
  const config = loadConfig(supervisorConfigSchema);
  const logger = createLogger({ service: 'supervisor', level: config.LOG_LEVEL });
  const metrics = createMetrics('supervisor');
  let ready = false;
  const ops = await startOpsServer({
    port: config.SUPERVISOR_OPS_PORT,
    logger,
    metrics,
    notReadyReason: () => (ready ? null : 'starting'),
  });
  const nc = await connectBus({ servers: config.NATS_URL, name: 'supervisor', logger });
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  const events = new OrderedPublisher({ js: jetstream(nc), logger: logger.child({ component: 'events' }) });
  const pool = new WorkerPool(nc, logger, config.SUPERVISOR_WORKER_TIMEOUT_MS);
  const assigner = new Assigner(
    nc,
    pool,
    events,
    logger,
    config.SUPERVISOR_LADDER,
    config.SUPERVISOR_ASSIGN_TIMEOUT_MS,
  );
  await assigner.start();
  const failovers = new Counter({
    name: 'supervisor_failovers_total',
    help: 'failovers by reason',
    labelNames: ['reason'],
    registers: [metrics],
  });
  // Replicas: every one keeps a warm view of the workers; only the lease holder consumes lifecycle events
  // and watches for stalls. Workers keep transcoding while no leader exists.
  let active: { stop: () => Promise<void> } | undefined;
  const lease = new LeaderLease({
    nc,
    logger,
    role: 'supervisor',
    ttlMs: config.SUPERVISOR_LEASE_MS,
    onAcquired: async () => {
      const detector = new StallDetector({
        nc,
        pool,
        logger,
        assigner,
        events,
        stallMs: config.SUPERVISOR_STALL_MS,
        startGraceMs: config.SUPERVISOR_START_GRACE_MS,
        checkMs: config.SUPERVISOR_CHECK_MS,
        metrics: { failovers },
      });
      await detector.start();
      const consumption = await consume({
        nc,
        logger,
        stream: streams.events,
        durable: 'supervisor',
        filterSubject: subjects.allStreamEvents,
        schema: lifecycleEvent,
        // A stream that finds no free worker is retried with backoff (a worker may be starting).
        maxDeliver: 20,
        handler: (event) => assigner.handle(event),
      });
      active = {
        stop: async () => {
          detector.stop();
          await consumption.stop();
        },
      };
    },
    onLost: async () => {
      const current = active;
      active = undefined;
      await current?.stop();
    },
  });
  await lease.start();
  ready = true;
  const service = await registerService(nc, logger, {
    name: serviceNames.supervisor,
    version: packageJson.version,
    description: 'assigns streams to transcoder workers (epochs, compare-and-set)',
    endpoints: [],
  });
  logger.info('supervisor ready');
  installShutdown(logger, [
    { name: 'nats service', run: () => service.stop().then(() => undefined) },
    { name: 'lease, consumer and stall detector', run: () => lease.stop() },
    { name: 'events', run: () => events.flush(3000) },
    { name: 'nats', run: () => nc.drain() },
    { name: 'ops http', run: () => ops.close() },
  ]);
}

main().catch((error: unknown) => {
  process.stderr.write(`supervisor failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
