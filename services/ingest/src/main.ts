// Ingest composition root: config -> logger -> NATS -> key store -> live streams -> RTMP -> ops/service.
// Stops in reverse on SIGTERM/SIGINT.
import { hostname } from 'node:os';
import { connectBus, OrderedPublisher, provision } from '@live/bus';
import { loadConfig } from '@live/config';
import { serviceNames } from '@live/contracts';
import { createLogger } from '@live/log';
import { createMetrics, installShutdown, registerService, startOpsServer } from '@live/runtime';
import { jetstream } from '@nats-io/jetstream';
import { Counter, Gauge } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { ingestConfigSchema } from './config.js';
import { ingestEndpoints } from './ctl.js';
import { KeyStore } from './keys/key-store.js';
import { IngestRtmpServer } from './rtmp/rtmp-server.js';
import { LiveStreams } from './streams/live-streams.js';

async function main(): Promise<void> {
  const config = loadConfig(ingestConfigSchema);
  const logger = createLogger({ service: 'ingest', level: config.LOG_LEVEL });
  const ingestId = `${hostname()}-${process.pid}`;
  const metrics = createMetrics('ingest');
  const liveStreams = new Gauge({
    name: 'ingest_live_streams',
    help: 'streams held by this instance',
    registers: [metrics],
  });
  const events = new Counter({
    name: 'ingest_events_total',
    help: 'lifecycle events by type',
    labelNames: ['type'],
    registers: [metrics],
  });
  const refused = new Counter({
    name: 'ingest_rtmp_refused_total',
    help: 'RTMP connections refused by kind',
    labelNames: ['kind'],
    registers: [metrics],
  });
  const publisherReads = new Counter({
    name: 'ingest_publisher_reads_total',
    help: "reads from publishers' connections (each a wake-up; INGEST_READ_INTERVAL_MS bounds them)",
    registers: [metrics],
  });

  let rtmpReady = false;
  let keys: KeyStore | undefined;
  const ops = await startOpsServer({
    port: config.INGEST_OPS_PORT,
    logger,
    metrics,
    notReadyReason: () =>
      !keys?.ready ? 'stream keys not loaded' : !rtmpReady ? 'RTMP not listening' : null,
  });

  const nc = await connectBus({
    servers: config.NATS_URL,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    name: `ingest ${ingestId}`,
    logger,
  });
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  const eventPublisher = new OrderedPublisher({
    js: jetstream(nc),
    logger: logger.child({ component: 'events' }),
  });

  let rtmpPort = config.INGEST_RTMP_PORT;
  let streams: LiveStreams | undefined;
  keys = new KeyStore(nc, logger.child({ component: 'keys' }), (hash) => streams?.kickKey(hash) ?? 0);
  streams = new LiveStreams({
    nc,
    events: eventPublisher,
    logger,
    ingestId,
    advertiseHost: config.INGEST_ADVERTISE_HOST,
    rtmpPort: () => rtmpPort,
    stallMs: config.INGEST_SOURCE_STALL_MS,
    healthIntervalMs: config.INGEST_HEALTH_INTERVAL_MS,
    reconnectGraceMs: config.INGEST_RECONNECT_GRACE_MS,
    startTimeoutMs: config.INGEST_START_TIMEOUT_MS,
    lookupKey: (key) => keys.lookup(key),
    metrics: { liveStreams, events },
  });
  await keys.start();

  const rtmp = new IngestRtmpServer({
    bind: config.INGEST_BIND,
    port: config.INGEST_RTMP_PORT,
    app: config.INGEST_RTMP_APP,
    handshakeTimeoutMs: config.INGEST_HANDSHAKE_TIMEOUT_MS,
    maxMessageBytes: config.INGEST_MAX_MESSAGE_BYTES,
    maxMetadataBytes: config.INGEST_MAX_METADATA_BYTES,
    readIntervalMs: config.INGEST_READ_INTERVAL_MS,
    logger,
    hooks: streams,
    onRefused: (kind) => refused.inc({ kind }),
    onPublisherRead: () => publisherReads.inc(),
  });
  rtmpPort = await rtmp.listen();
  rtmpReady = true;
  logger.info({ port: rtmpPort, app: config.INGEST_RTMP_APP }, 'RTMP listening');

  const service = await registerService(nc, logger, {
    name: serviceNames.ingest,
    version: packageJson.version,
    description: 'RTMP ingest: stream keys, source health, lifecycle events',
    metadata: {
      ingestId,
      rtmp: `rtmp://${config.INGEST_ADVERTISE_HOST}:${rtmpPort}/${config.INGEST_RTMP_APP}`,
    },
    endpoints: ingestEndpoints(keys),
  });

  installShutdown(logger, [
    { name: 'nats service', run: () => service.stop().then(() => undefined) },
    { name: 'rtmp', run: () => rtmp.close(), timeoutMs: 3000 },
    { name: 'streams', run: () => streams.releaseAll() },
    { name: 'events', run: () => eventPublisher.flush(3000) },
    { name: 'keys', run: () => keys.stop() },
    { name: 'nats', run: () => nc.drain() },
    { name: 'ops http', run: () => ops.close() },
  ]);
}

main().catch((error: unknown) => {
  // Config errors and start-up failures: one clear line on stderr, exit code 1.
  process.stderr.write(`ingest failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
