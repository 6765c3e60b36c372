// Chat configuration: one variable per line, defaults here and nowhere else.
import { env } from '@live/config';
import { z } from 'zod';

export const chatConfigSchema = z.object({
  /** Comma-separated NATS URLs. */
  NATS_URL: env.natsServers(),
  /** This service's NATS user and password (set from a Secret in Kubernetes; none locally). */
  NATS_USER: env.optional(),
  NATS_PASSWORD: env.optional(),
  LOG_LEVEL: env.logLevel(),
  /** JetStream replicas for streams and buckets this service provisions (3 on a production cluster). */
  NATS_REPLICAS: env.int(1, 1),
  /** Address the WebSocket listener binds. */
  CHAT_BIND: z.string().default('0.0.0.0'),
  /** WebSocket port: ws://HOST:8081/chat/<room>; also answers /healthz and /readyz for load balancers. */
  CHAT_PORT: env.port(8081),
  /** Port of /healthz, /readyz, /metrics. */
  CHAT_OPS_PORT: env.port(9105),
  /** HS256 secret shared by every chat pod (and the site that mints tokens): at least 32 characters. */
  CHAT_TOKEN_SECRET: z.string().min(32, 'CHAT_TOKEN_SECRET must be at least 32 characters'),
  /** Lifetime of tokens minted by the operator endpoint and the guest endpoint. */
  CHAT_TOKEN_TTL_S: env.int(4 * 3600, 60),
  /** Local mode: POST /api/chat/token {"room"} on the chat port hands out guest viewer tokens. Off in production. */
  CHAT_GUEST_TOKENS: env.bool(false),
  /**
   * A room's delivery sweeps start at most once per period: an event after a quiet period goes out at
   * once, events during the period after a sweep started go out together in the next one (about one frame
   * per client per period). At 20 msgs/s and 100 ms that halves the writes and reads and adds at most
   * 100 ms (50 on average); chat is shown held back to the video's latency anyway (seconds). 0: no
   * throttle (events received together still go out together).
   */
  CHAT_BATCH_MS: env.int(100, 0),
  /** Messages a joining client receives (the newest N). */
  CHAT_HISTORY: env.int(50, 0),
  /** Longest message, in Unicode code points. */
  CHAT_MAX_MESSAGE_CHARS: env.int(500, 1),
  /** Largest WebSocket frame accepted; bigger ones close the connection (1009). */
  CHAT_MAX_FRAME_BYTES: env.int(4096, 256),
  /** Connections this pod accepts at most (new ones get 503 beyond it). */
  CHAT_MAX_CONNECTIONS: env.int(20_000, 1),
  /** Bytes queued for one client that does not read before it is dropped (a slow consumer). */
  CHAT_MAX_BUFFERED_BYTES: env.int(512 * 1024, 1024),
  /** A connection must send `join` within this. */
  CHAT_JOIN_TIMEOUT_MS: env.ms(5_000),
  /** Per user: burst of messages, then one per CHAT_USER_REFILL_MS. */
  CHAT_USER_BURST: env.int(5, 1),
  CHAT_USER_REFILL_MS: env.ms(1_000),
  /** Per room on this pod: burst, then one per CHAT_ROOM_REFILL_MS (default 50 messages/s). */
  CHAT_ROOM_BURST: env.int(100, 1),
  CHAT_ROOM_REFILL_MS: env.ms(20),
  /** Refused messages (rate limit, invalid frames) within a minute before a client is disconnected. */
  CHAT_FLOOD_STRIKES: env.int(20, 1),
  /** Review hook: send each message to live.chat.review.<room> and wait this long for allow/deny/rewrite. */
  CHAT_REVIEW: env.bool(false),
  CHAT_REVIEW_TIMEOUT_MS: env.ms(250),
  /** What to do when the review hook does not answer in time. */
  CHAT_REVIEW_FALLBACK: z.enum(['allow', 'deny']).default('allow'),
  /** Period of this pod's load record in chat-nodes; a record older than 3 periods is a dead pod. */
  CHAT_NODE_REPORT_MS: env.ms(1_000),
  /** A pod is above its fair share when it holds more than fair * (1 + slack) connections. */
  CHAT_FAIR_SLACK: z.coerce.number().min(0).max(10).default(0.1),
  /** ...and at least this many more than fair (so tiny counts never flap). */
  CHAT_FAIR_MIN_EXCESS: env.int(20, 0),
  /** Fraction of its connections an overloaded pod sheds per second (never below its fair share). */
  CHAT_SHED_PER_SECOND: z.coerce.number().gt(0).max(1).default(0.02),
  /** A shed or shut-down client is told to wait a random delay in [min, max] before reconnecting. */
  CHAT_RECONNECT_MIN_MS: env.int(250, 0),
  CHAT_RECONNECT_MAX_MS: env.int(3_000, 0),
  /** On SIGTERM, clients are told to reconnect spread over this window (so no other pod gets a thundering herd). */
  CHAT_SHUTDOWN_SPREAD_MS: env.ms(3_000),
});

export type ChatConfig = z.infer<typeof chatConfigSchema>;
