// Web configuration: one variable per line, defaults here and nowhere else.
import { ConfigError, env, loadConfig } from '@live/config';
import { z } from 'zod';

export const webConfigSchema = z.object({
  /** Comma-separated NATS URLs. */
  NATS_URL: env.natsServers(),
  /** This service's NATS user and password (set from a Secret in Kubernetes; none locally). */
  NATS_USER: env.optional(),
  NATS_PASSWORD: env.optional(),
  LOG_LEVEL: env.logLevel(),
  /** JetStream replicas for streams and buckets this service provisions (3 on a production cluster). */
  NATS_REPLICAS: env.int(1, 1),
  /** Pages, the gateway API (/api/...) and, locally, the HLS proxy (/hls/...). */
  WEB_PORT: env.port(8080),
  WEB_BIND: z.string().default('0.0.0.0'),
  /** Port of /healthz, /readyz, /metrics. */
  WEB_OPS_PORT: env.port(9106),
  /** The built pages (vite build); relative paths are from the service's folder. */
  WEB_PAGES_DIR: z.string().default('dist/public'),
  /**
   * Studio and ops APIs: `token` (production) wants WEB_ADMIN_TOKEN as a bearer token or the cookie the
   * login form sets; `none` (local mode only) lets anyone in.
   */
  WEB_AUTH: z.enum(['token', 'none']).default('token'),
  /** The admin token (Kubernetes: the web-admin Secret); at least 24 characters. */
  WEB_ADMIN_TOKEN: z.string().min(24, 'WEB_ADMIN_TOKEN must be at least 24 characters').optional(),
  /** Local mode: POST /api/chat/token {"room"} hands out guest viewer tokens. Off in production. */
  WEB_GUEST_CHAT: env.bool(false),
  /** Where pages fetch HLS: /hls (this service, proxied to WEB_HLS_UPSTREAM) or the CDN's base URL. */
  WEB_HLS_BASE: z.string().default('/hls'),
  /**
   * Where pages fetch LL-HLS (the packager origin's /ll/, blocking playlist reload): /ll (this service,
   * proxied to WEB_HLS_UPSTREAM) or the CDN's base URL in front of the origin. Empty: plain HLS only.
   */
  WEB_LLHLS_BASE: z.string().default('/ll'),
  /** Local mode: /hls/* and /ll/* are proxied here (the packager's origin). Empty: no proxy (production uses the CDN). */
  WEB_HLS_UPSTREAM: z.url({ protocol: /^https?$/ }).optional(),
  /** The chat WebSocket base the pages connect to: <WEB_CHAT_URL>/<room>. */
  WEB_CHAT_URL: z
    .string()
    .regex(/^wss?:\/\/\S+$/, 'expected ws:// or wss://')
    .default('ws://localhost:8081/chat'),
  /** The RTMP URL the studio shows streamers (OBS "Server"). */
  WEB_RTMP_URL: z
    .string()
    .regex(/^rtmps?:\/\/\S+$/, 'expected rtmp://')
    .default('rtmp://localhost:1935/live'),
  /** The studio warns above this source bitrate (kbit/s) and above this keyframe interval (ms). */
  WEB_MAX_SOURCE_KBPS: env.int(8000, 100),
  WEB_MAX_KEYFRAME_MS: env.int(2000, 500),
  /** Server-sent event streams this pod serves at most (each is one open HTTP connection). */
  WEB_MAX_SSE: env.int(5000, 1),
  /** Fleet updates to ops pages at most this often (heartbeats arrive ~5/s per worker). */
  WEB_FLEET_THROTTLE_MS: env.int(250, 0),
});

export type WebConfig = Readonly<z.infer<typeof webConfigSchema>>;

/**
 * loadConfig plus the rule one variable cannot state alone: production (WEB_AUTH=token) needs the token.
 * (Kept out of the schema: a refinement would stop the deploy tests from checking partial env maps.)
 */
export function loadWebConfig(source: Record<string, string | undefined> = process.env): WebConfig {
  const config = loadConfig(webConfigSchema, source);
  if (config.WEB_AUTH === 'token' && config.WEB_ADMIN_TOKEN === undefined)
    throw new ConfigError(['WEB_ADMIN_TOKEN: required unless WEB_AUTH=none (local mode) (not set)']);
  return config;
}
