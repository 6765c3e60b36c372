// The whole platform for end-to-end tests: a real nats-server and every service as its own process on
// free ports, local storage in a temp folder, and helpers to read playlists through the HTTP origin.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytes, connectBus, decode } from '@live/bus';
import { createKeyReply, type LifecycleEvent, lifecycleEvent, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import {
  buildWebPages,
  type Child,
  freePort,
  type NatsServer,
  startNatsServer,
  startServiceProcess,
  waitFor,
} from '@live/testing';
import type { NatsConnection } from '@nats-io/nats-core';
import { parse } from 'hls-parser';
import type { MasterPlaylist, MediaPlaylist } from 'hls-parser/types.js';

/** Small ladder for a 640x360 test source on a 2-core machine. */
export const TEST_LADDER = [
  { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 600, audioKbps: 64 },
  { name: '240p', width: 426, height: 240, fps: 30, videoKbps: 300, audioKbps: 64 },
];

export interface Platform {
  nats: NatsServer;
  nc: NatsConnection;
  mediaDir: string;
  rtmpPort: number;
  originPort: number;
  ingest: Child;
  /** Every ingest process (the first is `ingest`). */
  ingests: Child[];
  supervisor: Child;
  packager: Child;
  workers: Child[];
  /** The chat process (with options.chat) and its WebSocket URL for a room. */
  chat: Child | undefined;
  chatUrl(room: string): string;
  /** The web process (with options.web: pages, gateway, /hls proxied to the origin) and its base URL. */
  web: Child | undefined;
  webUrl: string;
  events: LifecycleEvent[];
  logs: { service: string; line: Record<string, unknown> }[];
  createKey(streamId: string): Promise<string>;
  publishUrl(key: string): string;
  fetchText(path: string): Promise<string | null>;
  master(streamId: string): Promise<MasterPlaylist | null>;
  media(streamId: string, rendition: string): Promise<MediaPlaylist | null>;
  startWorker(): Promise<Child>;
  /** Another ingest process on its own RTMP port. */
  startIngest(): Promise<{ child: Child; rtmpPort: number }>;
  publishUrlOn(rtmpPort: number, key: string): string;
  /** A service process's /metrics value (first sample of `name`), null if absent. */
  metric(child: Child, name: string): Promise<number | null>;
  /** The sum of every sample of `name` (all its label sets), 0 if absent. */
  metricTotal(child: Child, name: string): Promise<number>;
  /** Another packager replica (its origin on `originPort`, default the platform's). */
  startPackager(originPort?: number, env?: Record<string, string>): Promise<Child>;
  stop(): Promise<void>;
}

export interface PlatformOptions {
  workers?: number;
  /** Ladder presets for the supervisor (default: TEST_LADDER). */
  ladder?: typeof TEST_LADDER;
  /** x264 preset of the workers (default: ultrafast, the cheapest). */
  preset?: string;
  env?: Record<string, string>;
  /** Per-service environment (e.g. each service's NATS user), by service name. */
  serviceEnv?: Record<string, Record<string, string>>;
  /** nats-server configuration (accounts and users), and the user the test's own connection uses. */
  natsConfig?: Record<string, unknown>;
  testUser?: { user: string; pass: string };
  /** Also run a chat process. */
  chat?: boolean;
  /** Also run the web service (pages and gateway; needs `vite build` of services/web first). */
  web?: boolean;
}

/** The chat's token secret in e2e runs. */
export const CHAT_TEST_SECRET = 'e2e-chat-token-secret-0123456789abcdef';
/** The web service's admin token in e2e runs (production mode: WEB_AUTH=token). */
export const WEB_TEST_ADMIN_TOKEN = 'e2e-web-admin-token-0123456789abcdef';

/**
 * Starts the platform. If any part fails to start, what was started is stopped before the error is thrown:
 * a test whose `before` failed has no platform to stop, and a process left running would keep the test
 * runner from ever exiting.
 */
export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const undo: (() => Promise<unknown>)[] = [];
  try {
    return await launch(options, undo);
  } catch (error) {
    for (const step of undo.reverse()) await step().catch(() => undefined);
    throw error;
  }
}

async function launch(options: PlatformOptions, undo: (() => Promise<unknown>)[]): Promise<Platform> {
  const logger = createLogger({ service: 'e2e', level: 'fatal' });
  const nats = await startNatsServer('test', options.natsConfig);
  undo.push(() => nats.dispose());
  const nc = await connectBus({
    servers: [nats.url],
    name: 'e2e',
    logger,
    user: options.testUser?.user,
    pass: options.testUser?.pass,
  });
  undo.push(() => nc.close());
  const mediaDir = mkdtempSync(join(tmpdir(), 'media-'));
  const workDir = mkdtempSync(join(tmpdir(), 'transcode-'));
  const events: LifecycleEvent[] = [];
  const logs: Platform['logs'] = [];
  nc.subscribe(subjects.allStreamEvents, {
    callback: (_e, m) => {
      const d = decode(lifecycleEvent, m.data);
      if (d.ok) events.push(d.value);
    },
  });
  const common = { NATS_URL: nats.url, STORAGE: 'local', STORAGE_LOCAL_DIR: mediaDir, ...options.env };
  const collect = (service: string) => (line: string) => {
    try {
      logs.push({ service, line: JSON.parse(line) });
    } catch {
      logs.push({ service, line: { raw: line } });
    }
  };
  const opsPorts = new Map<Child, number>();
  /** Every sample of `name` on a service's /metrics (all its label sets), none if absent or unreachable. */
  const metricSamples = async (child: Child, name: string): Promise<number[]> => {
    const res = await fetch(`http://127.0.0.1:${opsPorts.get(child)}/metrics`).catch(() => null);
    return ((await res?.text()) ?? '')
      .split('\n')
      .filter((l) => new RegExp(`^${name}[ {]`).test(l))
      .map((l) => Number(l.split(' ').at(-1)));
  };
  const start = async (service: string, env: Record<string, string>) => {
    const opsPort = await freePort();
    const opsVar = `${service.toUpperCase()}_OPS_PORT`;
    const child = await startServiceProcess({
      service,
      opsPort,
      env: { ...common, [opsVar]: String(opsPort), ...options.serviceEnv?.[service], ...env },
      onLine: collect(service),
    });
    undo.push(() => child.stop('SIGKILL'));
    opsPorts.set(child, opsPort);
    return child;
  };
  const originPort = await freePort();
  const ingests: Child[] = [];
  const startIngest = async () => {
    const port = await freePort();
    const child = await start('ingest', {
      INGEST_BIND: '127.0.0.1',
      INGEST_RTMP_PORT: String(port),
      INGEST_RECONNECT_GRACE_MS: '4000',
    });
    ingests.push(child);
    return { child, rtmpPort: port };
  };
  const { child: ingest, rtmpPort } = await startIngest();
  const supervisor = await start('supervisor', {
    SUPERVISOR_LADDER: JSON.stringify(options.ladder ?? TEST_LADDER),
  });
  let workerCount = 0;
  const startWorker = () =>
    start('transcoder', {
      TRANSCODER_WORKER_ID: `w${++workerCount}`,
      TRANSCODER_SLOTS: '1',
      TRANSCODER_WORK_DIR: join(workDir, `w${workerCount}`),
      TRANSCODER_PRESET: options.preset ?? 'ultrafast',
    });
  const startPackager = (port = originPort, env: Record<string, string> = {}) =>
    start('packager', {
      PACKAGER_HTTP_PORT: String(port),
      PACKAGER_HTTP_BIND: '127.0.0.1',
      PACKAGER_DELETE_GRACE_MS: '5000',
      // A short window, so the tests of deletion see media leave it within seconds (default 12).
      PACKAGER_WINDOW_SEGMENTS: '6',
      ...env,
    });
  const workers: Child[] = [];
  for (let i = 0; i < (options.workers ?? 2); i++) workers.push(await startWorker());
  const chatPort = await freePort();
  const chat = options.chat
    ? await start('chat', {
        CHAT_PORT: String(chatPort),
        CHAT_BIND: '127.0.0.1',
        CHAT_TOKEN_SECRET: CHAT_TEST_SECRET,
      })
    : undefined;
  const webPort = await freePort();
  const packager = await startPackager();
  // The web service serves the pages Vite built: built once if this checkout has none yet.
  if (options.web) buildWebPages('if-missing');
  const web = options.web
    ? await start('web', {
        WEB_PORT: String(webPort),
        WEB_BIND: '127.0.0.1',
        WEB_AUTH: 'token',
        WEB_ADMIN_TOKEN: WEB_TEST_ADMIN_TOKEN,
        WEB_GUEST_CHAT: 'true',
        WEB_HLS_UPSTREAM: `http://127.0.0.1:${originPort}`,
        WEB_CHAT_URL: `ws://127.0.0.1:${chatPort}/chat`,
        WEB_RTMP_URL: `rtmp://127.0.0.1:${rtmpPort}/live`,
      })
    : undefined;
  const platform: Platform = {
    nats,
    nc,
    mediaDir,
    rtmpPort,
    originPort,
    ingest,
    ingests,
    supervisor,
    packager,
    workers,
    chat,
    chatUrl: (room) => `ws://127.0.0.1:${chatPort}/chat/${room}`,
    web,
    webUrl: `http://127.0.0.1:${webPort}`,
    events,
    logs,
    startWorker,
    startPackager,
    startIngest,
    publishUrlOn: (port, key) => `rtmp://127.0.0.1:${port}/live/${key}`,
    async metric(child, name) {
      return (await metricSamples(child, name))[0] ?? null;
    },
    async metricTotal(child, name) {
      return (await metricSamples(child, name)).reduce((sum, value) => sum + value, 0);
    },
    async createKey(streamId) {
      const reply = await nc.request(subjects.ctl.keysCreate, bytes(JSON.stringify({ streamId })), {
        timeout: 5000,
      });
      const d = decode(createKeyReply, reply.data);
      if (!d.ok) throw new Error('key creation failed');
      return d.value.streamKey;
    },
    publishUrl: (key) => `rtmp://127.0.0.1:${rtmpPort}/live/${key}`,
    async fetchText(path) {
      const res = await fetch(`http://127.0.0.1:${platform.originPort}${path}`);
      return res.ok ? res.text() : null;
    },
    async master(streamId) {
      const text = await platform.fetchText(`/hls/${streamId}/master.m3u8`);
      return text ? (parse(text) as MasterPlaylist) : null;
    },
    async media(streamId, rendition) {
      const text = await platform.fetchText(`/hls/${streamId}/${rendition}.m3u8`);
      return text ? (parse(text) as MediaPlaylist) : null;
    },
    async stop() {
      // Workers last: they drain on SIGTERM, which ends at once when their sources are gone.
      await Promise.all(
        [platform.packager, supervisor, ...ingests, ...(chat ? [chat] : []), ...(web ? [web] : [])].map((c) =>
          c.stop('SIGTERM', 5000),
        ),
      );
      await Promise.all(platform.workers.map((c) => c.stop('SIGTERM', 5000)));
      await nc.close();
      await nats.dispose();
      rmSync(mediaDir, { recursive: true, force: true });
      rmSync(workDir, { recursive: true, force: true });
    },
  };
  return platform;
}

export { waitFor };
