// Chat composition root: config -> logger -> NATS -> moderation -> rooms -> WebSocket server -> balancer ->
// ops/service. On SIGTERM: not ready, clients told to reconnect elsewhere (spread), then stops in reverse.
import { hostname } from 'node:os';
import { connectBus, provision } from '@live/bus';
import { loadConfig } from '@live/config';
import { CHAT_ROOM_RETAINED, serviceNames } from '@live/contracts';
import { createLogger } from '@live/log';
import { createMetrics, installShutdown, registerService, startOpsServer } from '@live/runtime';
import { jetstreamManager } from '@nats-io/jetstream';
import { Counter, Gauge } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { Tokens } from './auth/tokens.js';
import { NodeBalancer } from './balance/node-balancer.js';
import { chatConfigSchema } from './config.js';
import { chatEndpoints } from './ctl.js';
import { Moderation } from './moderation/moderation.js';
import { createReview } from './review.js';
import { Rooms } from './rooms/rooms.js';
import { ChatServer } from './server/chat-server.js';
import { Limits } from './server/context.js';

async function main(): Promise<void> {
  const config = loadConfig(chatConfigSchema);
  const logger = createLogger({ service: 'chat', level: config.LOG_LEVEL });
  const podId = `${hostname()}-${process.pid}`.replace(/[^-\w]/g, '_');
  const metrics = createMetrics('chat');
  const connections = new Gauge({
    name: 'chat_connections',
    help: 'WebSocket connections on this pod',
    registers: [metrics],
  });
  const fairShare = new Gauge({
    name: 'chat_fair_share',
    help: 'connections per pod if load were even',
    registers: [metrics],
  });
  const rooms = new Gauge({ name: 'chat_rooms', help: 'rooms this pod follows', registers: [metrics] });
  const deliveries = new Counter({
    name: 'chat_deliveries_total',
    help: 'room events sent to clients',
    registers: [metrics],
  });
  const shedTotal = new Counter({
    name: 'chat_shed_total',
    help: 'clients asked to reconnect elsewhere to rebalance',
    registers: [metrics],
  });
  const chatMetrics = {
    messages: new Counter({
      name: 'chat_messages_total',
      help: 'messages accepted and stored',
      registers: [metrics],
    }),
    refused: new Counter({
      name: 'chat_refused_total',
      help: 'frames, messages and connections refused, by reason',
      labelNames: ['reason'],
      registers: [metrics],
    }),
    closed: new Counter({
      name: 'chat_closed_total',
      help: 'connections closed by the server, by reason',
      labelNames: ['reason'],
      registers: [metrics],
    }),
  };

  const logged = new Map<string, { at: number; suppressed: number }>();
  const logOnce = (kind: string, fields: Record<string, unknown>, message: string) => {
    const now = Date.now();
    const last = logged.get(kind);
    if (last && now - last.at < 60_000) {
      last.suppressed++;
      return;
    }
    logger.warn({ ...fields, kind, similarInLastMinute: last?.suppressed ?? 0 }, message);
    logged.set(kind, { at: now, suppressed: 0 });
  };

  let server: ChatServer | undefined;
  let balancer: NodeBalancer | undefined;
  let started = false;
  const ops = await startOpsServer({
    port: config.CHAT_OPS_PORT,
    logger,
    metrics,
    notReadyReason: () => (started && server ? notReadyReason() : 'starting'),
  });

  const nc = await connectBus({
    servers: config.NATS_URL,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    name: `chat ${podId}`,
    logger,
  });
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  const tokens = new Tokens(config.CHAT_TOKEN_SECRET, config.CHAT_TOKEN_TTL_S);
  const moderation = new Moderation(nc, logger.child({ component: 'moderation' }), {
    sanctionChanged: (...args) => server?.sanctionChanged(...args),
    settingsChanged: (...args) => server?.settingsChanged(...args),
  });
  await moderation.start();
  const roomRegistry = new Rooms(nc, await jetstreamManager(nc), logger, {
    retained: CHAT_ROOM_RETAINED,
    batchMs: config.CHAT_BATCH_MS,
    onDelivered: (n) => deliveries.inc(n),
  });
  const limits = new Limits(config, (room) => moderation.roomSettings(room).slowSeconds);
  const sweep = setInterval(() => {
    limits.sweep();
    rooms.set(roomRegistry.count);
  }, 60_000).unref();

  const notReadyReason = (): string | null => {
    if (nc.isClosed()) return 'NATS connection closed';
    if ((server?.connections.size ?? 0) >= config.CHAT_MAX_CONNECTIONS) return 'at CHAT_MAX_CONNECTIONS';
    const share = balancer?.share();
    if (share?.overloaded)
      return `above fair share (${share.mine} connections, fair ${share.fair} across ${share.pods} pods)`;
    return null;
  };

  server = new ChatServer({
    context: {
      config,
      tokens,
      rooms: roomRegistry,
      moderation,
      limits,
      review: createReview(nc, logger.child({ component: 'review' }), {
        enabled: config.CHAT_REVIEW,
        timeoutMs: config.CHAT_REVIEW_TIMEOUT_MS,
        fallback: config.CHAT_REVIEW_FALLBACK,
      }),
      metrics: chatMetrics,
      logOnce,
    },
    logger,
    notReadyReason,
    onCountChange: (n) => connections.set(n),
  });
  const chatServer = server;
  balancer = new NodeBalancer({
    nc,
    logger: logger.child({ component: 'balancer' }),
    podId,
    capacity: config.CHAT_MAX_CONNECTIONS,
    reportMs: config.CHAT_NODE_REPORT_MS,
    slack: config.CHAT_FAIR_SLACK,
    minExcess: config.CHAT_FAIR_MIN_EXCESS,
    shedPerSecond: config.CHAT_SHED_PER_SECOND,
    connections: () => chatServer.connections.size,
    shed: (count) => {
      const asked = chatServer.shed(count);
      shedTotal.inc(asked);
      fairShare.set(balancer?.share().fair ?? 0);
      return asked;
    },
  });
  await balancer.start();
  const nodeBalancer = balancer;
  const port = await chatServer.listen();
  started = true;
  logger.info(
    { port, podId, guestTokens: config.CHAT_GUEST_TOKENS },
    'chat listening (ws://HOST:PORT/chat/<room>)',
  );

  const service = await registerService(nc, logger, {
    name: serviceNames.chat,
    version: packageJson.version,
    description: 'chat: WebSocket rooms, moderation, tokens',
    metadata: { podId, ws: `ws://${hostname()}:${port}/chat/<room>` },
    endpoints: chatEndpoints(tokens, moderation, roomRegistry),
  });

  installShutdown(logger, [
    { name: 'draining', run: () => nodeBalancer.setDraining(), timeoutMs: 2000 },
    {
      name: 'clients',
      run: () => chatServer.shutdown(config.CHAT_SHUTDOWN_SPREAD_MS),
      timeoutMs: config.CHAT_SHUTDOWN_SPREAD_MS + 5000,
    },
    { name: 'nats service', run: () => service.stop().then(() => undefined) },
    { name: 'balancer', run: () => nodeBalancer.stop() },
    { name: 'rooms', run: () => roomRegistry.stop() },
    { name: 'moderation', run: () => moderation.stop() },
    { name: 'sweep', run: () => clearInterval(sweep) },
    { name: 'nats', run: () => nc.drain() },
    { name: 'ops http', run: () => ops.close() },
  ]);
}

main().catch((error: unknown) => {
  // Config errors and start-up failures: one clear line on stderr, exit code 1.
  process.stderr.write(`chat failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
