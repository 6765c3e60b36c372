// One real nats-server and one real ingest process for a test file, with every event and health
// message collected as it arrives.
import { bytes, connectBus, decode, text } from '@live/bus';
import {
  createKeyReply,
  type IngestHealth,
  ingestHealth,
  type LifecycleEvent,
  lifecycleEvent,
  subjects,
} from '@live/contracts';
import { createLogger } from '@live/log';
import {
  type Child,
  freePort,
  type NatsServer,
  startNatsServer,
  startServiceProcess,
  waitFor,
} from '@live/testing';
import type { NatsConnection } from '@nats-io/nats-core';

export interface IngestHarness {
  nats: NatsServer;
  nc: NatsConnection;
  ingest: Child;
  rtmpPort: number;
  opsPort: number;
  events: LifecycleEvent[];
  health: IngestHealth[];
  invalid: string[];
  logs: Record<string, unknown>[];
  createKey(streamId: string): Promise<string>;
  publishUrl(key: string): string;
  waitForEvent<T extends LifecycleEvent['type']>(
    streamId: string,
    type: T,
    options?: { after?: number; timeoutMs?: number },
  ): Promise<Extract<LifecycleEvent, { type: T }>>;
  eventsOf(streamId: string): LifecycleEvent[];
  stop(): Promise<void>;
}

export const testEnv = {
  INGEST_SOURCE_STALL_MS: '600',
  INGEST_RECONNECT_GRACE_MS: '3000',
  INGEST_HANDSHAKE_TIMEOUT_MS: '1500',
  INGEST_START_TIMEOUT_MS: '4000',
};

export async function startIngestHarness(env: Record<string, string> = {}): Promise<IngestHarness> {
  const logger = createLogger({ service: 'ingest-test', level: 'fatal' });
  const nats = await startNatsServer();
  const nc = await connectBus({ servers: [nats.url], name: 'ingest-test', logger });
  const rtmpPort = await freePort();
  const opsPort = await freePort();
  const events: LifecycleEvent[] = [];
  const health: IngestHealth[] = [];
  const invalid: string[] = [];
  const logs: Record<string, unknown>[] = [];
  nc.subscribe(subjects.allStreamEvents, {
    callback: (_err, m) => {
      const d = decode(lifecycleEvent, m.data);
      if (d.ok) events.push(d.value);
      else invalid.push(`${m.subject}: ${d.reason}`);
    },
  });
  nc.subscribe(subjects.allIngestHealth, {
    callback: (_err, m) => {
      const d = decode(ingestHealth, m.data);
      if (d.ok) health.push(d.value);
      else invalid.push(`${m.subject}: ${d.reason}`);
    },
  });
  const ingest = await startServiceProcess({
    service: 'ingest',
    opsPort,
    env: {
      NATS_URL: nats.url,
      INGEST_BIND: '127.0.0.1',
      INGEST_RTMP_PORT: String(rtmpPort),
      INGEST_OPS_PORT: String(opsPort),
      ...testEnv,
      ...env,
    },
    onLine: (line) => {
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ raw: line });
      }
    },
  });
  const eventsOf = (streamId: string) => events.filter((e) => e.streamId === streamId);
  return {
    nats,
    nc,
    ingest,
    rtmpPort,
    opsPort,
    events,
    health,
    invalid,
    logs,
    eventsOf,
    async createKey(streamId) {
      const reply = await nc.request(subjects.ctl.keysCreate, bytes(JSON.stringify({ streamId })), {
        timeout: 5000,
      });
      const d = decode(createKeyReply, reply.data);
      if (!d.ok) throw new Error(`keys.create failed: ${text(reply.data)}`);
      return d.value.streamKey;
    },
    publishUrl: (key) => `rtmp://127.0.0.1:${rtmpPort}/live/${key}`,
    waitForEvent(streamId, type, { after = 0, timeoutMs = 10_000 } = {}) {
      return waitFor(
        () =>
          events.find((e, i) => i >= after && e.streamId === streamId && e.type === type) as
            | Extract<LifecycleEvent, { type: typeof type }>
            | undefined,
        { timeoutMs, what: `${type} event for ${streamId}` },
      );
    },
    async stop() {
      await ingest.stop('SIGTERM', 5000);
      await nc.close();
      await nats.dispose();
    },
  };
}
