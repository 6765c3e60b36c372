// Supervisor composition root: config -> logger -> NATS -> worker pool and source health -> assigner ->
// (while holding the leader lease) lifecycle consumer, waiting streams, stall detector, mover, standby
// monitor, operator endpoints.
import { connectBus, consume, OrderedPublisher, provision } from '@live/bus';
import { loadConfig } from '@live/config';
import {
  type AssignmentRecord,
  lifecycleEvent,
  serviceNames,
  streamMoveReply,
  streamMoveRequest,
  streams,
  subjects,
  workerDrainReply,
  workerDrainRequest,
} from '@live/contracts';
import { createLogger } from '@live/log';
import {
  createMetrics,
  endpoint,
  installShutdown,
  LeaderLease,
  registerService,
  startOpsServer,
} from '@live/runtime';
import { jetstream } from '@nats-io/jetstream';
import { Counter } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { Assigner } from './assigner.js';
import { supervisorConfigSchema } from './config.js';
import { Mover } from './mover.js';
import { SourceHealth } from './source-health.js';
import { StallDetector } from './stall-detector.js';
import { StandbyMonitor } from './standby-monitor.js';
import { WaitingStreams } from './waiting-streams.js';
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
  const nc = await connectBus({
    servers: config.NATS_URL,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    name: 'supervisor',
    logger,
  });
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  const events = new OrderedPublisher({ js: jetstream(nc), logger: logger.child({ component: 'events' }) });
  const pool = new WorkerPool(nc, logger, config.SUPERVISOR_WORKER_TIMEOUT_MS);
  const sources = new SourceHealth(nc, logger);
  const waiting = new WaitingStreams({
    pool,
    events,
    logger,
    metrics,
    place: (stream): Promise<AssignmentRecord> =>
      assigner.assign(stream.streamId, stream.source, { cause: stream.cause, sessionId: stream.sessionId }),
  });
  const assigner = new Assigner({
    nc,
    pool,
    sources,
    events,
    logger,
    presets: config.SUPERVISOR_LADDER,
    assignTimeoutMs: config.SUPERVISOR_ASSIGN_TIMEOUT_MS,
    waiting,
    staleEvents: new Counter({
      name: 'supervisor_stale_events_total',
      help: 'ingest events ignored because they speak for a session the stream has left (another ingest holds it), by type',
      labelNames: ['type'],
      registers: [metrics],
    }),
  });
  await assigner.start();
  const failovers = new Counter({
    name: 'supervisor_failovers_total',
    help: 'failovers by reason',
    labelNames: ['reason'],
    registers: [metrics],
  });
  const standby = new StandbyMonitor({
    pool,
    events,
    logger,
    metrics,
    required: config.SUPERVISOR_STANDBY_SLOTS,
    checkMs: 500,
    warmupMs: config.SUPERVISOR_WORKER_TIMEOUT_MS,
  });
  const mover = new Mover({
    nc,
    pool,
    assigner,
    events,
    logger,
    handoverTimeoutMs: config.SUPERVISOR_HANDOVER_TIMEOUT_MS,
  });
  const operatorEndpoints = [
    endpoint({
      name: 'worker-drain',
      subject: subjects.ctl.workerDrain,
      description: 'move every stream off a worker (make-before-break); it takes no new ones until restarted',
      request: workerDrainRequest,
      reply: workerDrainReply,
      handler: async ({ workerId }) => ({ workerId, streams: await mover.drainWorker(workerId) }),
    }),
    endpoint({
      name: 'stream-move',
      subject: subjects.ctl.streamMove,
      description: 'move one stream to another worker (make-before-break); replies once the move is done',
      request: streamMoveRequest,
      reply: streamMoveReply,
      handler: ({ streamId, toWorker }) => mover.move(streamId, 'operator', toWorker ? { toWorker } : {}),
    }),
  ];
  // Replicas: every one keeps a warm view of the workers and sources; only the lease holder consumes
  // lifecycle events, watches for stalls, moves streams, alerts and answers operators (its `live-supervisor`
  // service is the one `nats micro ls` shows). Workers keep transcoding while no leader exists.
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
        sources,
        logger,
        assigner,
        events,
        stallMs: config.SUPERVISOR_STALL_MS,
        startGraceMs: config.SUPERVISOR_START_GRACE_MS,
        checkMs: config.SUPERVISOR_CHECK_MS,
        sourceLostMs: config.SUPERVISOR_SOURCE_LOST_MS,
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
        // A failed handler (a KV write refused during a leader election) is retried with backoff. A stream
        // that finds no free worker is not: its event is held while it waits (waiting-streams.ts).
        maxDeliver: 20,
        handler: (event, meta) => assigner.handle(event, meta.hold),
      });
      waiting.start();
      mover.start();
      standby.start();
      const service = await registerService(nc, logger, {
        name: serviceNames.supervisor,
        version: packageJson.version,
        description: 'the supervisor leader: assignments, failover, drains and moves',
        endpoints: operatorEndpoints,
      });
      active = {
        stop: async () => {
          await service.stop();
          standby.stop();
          mover.stop();
          detector.stop();
          // Placing stops first; the consumer then hands the waiting streams' events back to JetStream.
          waiting.stop();
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
  logger.info('supervisor ready');
  installShutdown(logger, [
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
