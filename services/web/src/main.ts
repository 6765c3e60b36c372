// Web composition root: config -> logger -> ops server -> NATS -> live state (consumer, KV watches,
// subscriptions) -> pages -> HTTP (pages, gateway API, server-sent events, local HLS proxy) -> $SRV.
// On SIGTERM: not ready, event streams closed (pages reconnect elsewhere), then stops in reverse.
import { hostname } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectBus, provision } from '@live/bus';
import { serviceNames } from '@live/contracts';
import { createLogger } from '@live/log';
import { createMetrics, installShutdown, registerService, startOpsServer } from '@live/runtime';
import { Counter, Gauge } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { loadWebConfig } from './config.js';
import { AdminAuth } from './gateway/auth.js';
import { Ctl } from './gateway/ctl.js';
import { LiveState } from './gateway/live-state.js';
import { loadPages } from './gateway/pages.js';
import { startWebServer } from './gateway/server.js';
import { SseHub } from './gateway/sse.js';

/** The package folder, whether running from src/ (tsx) or dist/ (production). */
const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

async function main(): Promise<void> {
  const config = loadWebConfig();
  const logger = createLogger({ service: 'web', level: config.LOG_LEVEL });
  const instanceId = `${hostname()}-${process.pid}`.replace(/[^-\w]/g, '_');
  const metrics = createMetrics('web');
  const sse = new SseHub(config.WEB_MAX_SSE);
  new Gauge({
    name: 'web_event_streams',
    help: 'open server-sent event streams',
    registers: [metrics],
    collect() {
      this.set(sse.count);
    },
  });
  const requests = new Counter({
    name: 'web_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['route', 'status'] as const,
    registers: [metrics],
  });

  let state: LiveState | undefined;
  let stopping = false;
  const ops = await startOpsServer({
    port: config.WEB_OPS_PORT,
    logger,
    metrics,
    notReadyReason: () => {
      if (stopping) return 'shutting down';
      if (!state?.ready) return 'starting';
      if (nc?.isClosed()) return 'NATS connection closed';
      return null;
    },
  });
  // Fails before connecting anywhere when the pages were not built (a clear message, exit 1).
  const pagesDir = isAbsolute(config.WEB_PAGES_DIR)
    ? config.WEB_PAGES_DIR
    : join(packageDir, config.WEB_PAGES_DIR);
  const pages = await loadPages(pagesDir);

  const nc = await connectBus({
    servers: config.NATS_URL,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    name: `web ${instanceId}`,
    logger,
  });
  // Every service provisions every stream and bucket (idempotent), so start order never matters.
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  const liveState = new LiveState({
    nc,
    logger: logger.child({ component: 'live-state' }),
    throttleMs: config.WEB_FLEET_THROTTLE_MS,
  });
  await liveState.start();
  state = liveState;

  const http = await startWebServer({
    config,
    logger,
    pages,
    state: liveState,
    ctl: new Ctl(nc, config.WEB_RTMP_URL),
    sse,
    auth: new AdminAuth(config.WEB_AUTH, config.WEB_ADMIN_TOKEN),
    requests,
  });
  logger.info(
    {
      port: http.port,
      auth: config.WEB_AUTH,
      guestChat: config.WEB_GUEST_CHAT,
      hls: config.WEB_HLS_UPSTREAM ?? config.WEB_HLS_BASE,
    },
    'web listening (/watch/<id>, /studio, /ops, /api/...)',
  );
  if (config.WEB_AUTH === 'none')
    logger.warn('WEB_AUTH=none: studio and ops are open to anyone (local mode only)');

  const service = await registerService(nc, logger, {
    name: serviceNames.web,
    version: packageJson.version,
    description: 'web pages and their gateway (server-sent events, operator calls)',
    metadata: { instanceId, http: `http://${hostname()}:${http.port}` },
    endpoints: [],
  });

  installShutdown(logger, [
    {
      name: 'not ready',
      run: () => {
        stopping = true;
      },
    },
    { name: 'event streams', run: () => sse.closeAll() },
    { name: 'http', run: () => http.close() },
    { name: 'nats service', run: () => service.stop().then(() => undefined) },
    { name: 'live state', run: () => liveState.stop() },
    { name: 'nats', run: () => nc.drain() },
    { name: 'ops http', run: () => ops.close() },
  ]);
}

main().catch((error: unknown) => {
  // Config errors and start-up failures: one clear line on stderr, exit code 1.
  process.stderr.write(`web failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
