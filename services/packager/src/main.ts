// Packager composition root: config -> logger -> NATS -> storage -> packager -> consumers -> LL-HLS -> origin.
import { connectBus, consume, provision } from '@live/bus';
import { loadConfig } from '@live/config';
import { lifecycleEvent, segmentEvent, serviceNames, streams, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import { createMetrics, installShutdown, LeaderLease, registerService, startOpsServer } from '@live/runtime';
import { createStorage } from '@live/storage';
import { Counter, Gauge } from 'prom-client';
import packageJson from '../package.json' with { type: 'json' };
import { packagerConfigSchema } from './config.js';
import { LlOrigin } from './llhls/ll-origin.js';
import { OriginRing } from './llhls/origin-ring.js';
import { startOrigin } from './origin/origin.js';
import { Packager } from './packager.js';

async function main(): Promise<void> {
  const config = loadConfig(packagerConfigSchema);
  const logger = createLogger({ service: 'packager', level: config.LOG_LEVEL });
  const metrics = createMetrics('packager');
  const segments = new Counter({
    name: 'packager_segments_total',
    help: 'segment events by result (accepted, fenced, duplicate, no-init) and kind',
    labelNames: ['result', 'kind'],
    registers: [metrics],
  });
  const staleEnds = new Counter({
    name: 'packager_stale_ends_total',
    help: '`ended` events ignored (no ENDLIST) because they speak for a session the stream has left',
    registers: [metrics],
  });
  let ready = false;
  let ring: OriginRing | undefined;
  const ops = await startOpsServer({
    port: config.PACKAGER_OPS_PORT,
    logger,
    metrics,
    notReadyReason: () =>
      !ready ? 'starting' : ring?.informed === false ? 'learning the LL-HLS origin ring' : null,
  });
  const storage = createStorage(config);
  const nc = await connectBus({
    servers: config.NATS_URL,
    user: config.NATS_USER,
    pass: config.NATS_PASSWORD,
    name: 'packager',
    logger,
  });
  await provision(nc, logger, { replicas: config.NATS_REPLICAS });
  // Replicas: every one serves the origin; only the lease holder consumes events and writes playlists,
  // so two replicas never write conflicting playlists. A new leader rebuilds from storage + LIVE_MEDIA.
  let active: { packager: Packager; stop: () => Promise<void> } | undefined;
  const lease: LeaderLease = new LeaderLease({
    nc,
    logger,
    role: 'packager',
    ttlMs: config.PACKAGER_LEASE_MS,
    onAcquired: async () => {
      const packager = new Packager({
        nc,
        canWrite: () => lease.isLeader(),
        storage,
        logger,
        windowSegments: config.PACKAGER_WINDOW_SEGMENTS,
        deleteGraceMs: config.PACKAGER_DELETE_GRACE_MS,
        endSettleMs: config.PACKAGER_END_SETTLE_MS,
        metrics: { segments, staleEnds },
      });
      await packager.watchAssignments(nc);
      const media = await consume({
        nc,
        logger,
        stream: streams.media,
        durable: 'packager',
        filterSubject: subjects.allMedia,
        schema: segmentEvent,
        handler: (event) => packager.onSegment(event),
      });
      const lifecycle = await consume({
        nc,
        logger,
        stream: streams.events,
        durable: 'packager-lifecycle',
        filterSubject: subjects.allStreamEvents,
        schema: lifecycleEvent,
        deliver: 'new',
        handler: (event) => packager.onLifecycle(event),
      });
      active = {
        packager,
        stop: async () => {
          await Promise.all([media.stop(), lifecycle.stop()]);
          packager.stop();
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
  // Every replica builds LL-HLS from shared state (part events, segment events, assignments): no lease.
  // Each stream's playlists are answered by one replica (the ring), the others forward to it.
  ring = new OriginRing({
    nc,
    logger,
    originId: config.PACKAGER_ORIGIN_ID,
    url: `http://${config.PACKAGER_LL_ORIGIN_HOST}:${config.PACKAGER_HTTP_PORT}`,
    warmMs: config.PACKAGER_LL_WARM_MS,
  });
  const llOrigin = new LlOrigin({
    nc,
    storage,
    logger,
    originId: config.PACKAGER_ORIGIN_ID,
    partMs: config.PACKAGER_LL_PART_MS,
    targetDuration: config.PACKAGER_LL_TARGET_SECONDS,
    partHoldBackMs: config.PACKAGER_LL_PART_HOLD_BACK_MS,
    keepMs: config.PACKAGER_LL_KEEP_MS,
    fetchTimeoutMs: config.PACKAGER_LL_FETCH_TIMEOUT_MS,
    watchMs: config.PACKAGER_LL_WATCH_MS,
    endSettleMs: config.PACKAGER_END_SETTLE_MS,
    ring,
    metrics: {
      forwarded: new Counter({
        name: 'packager_ll_forwarded_total',
        help: 'LL-HLS requests forwarded to the replica that owns the stream (playlists; parts and segments not heard of here)',
        registers: [metrics],
      }),
      fetchedOnRequest: new Counter({
        name: 'packager_ll_fetched_on_request_total',
        help: 'LL-HLS parts, inits and segments fetched from their worker when asked for (stream not watched before)',
        registers: [metrics],
      }),
      parts: new Counter({
        name: 'packager_ll_parts_total',
        help: 'LL-HLS part events by result (accepted, duplicate, fenced, out-of-order, ended, fetch-failed, queued: heard since mid-segment, unfollowed: just unwatched)',
        labelNames: ['result'],
        registers: [metrics],
      }),
    },
  });
  await llOrigin.start();
  new Gauge({
    name: 'packager_ll_watched_streams',
    help: 'streams whose LL-HLS part events this replica hears and fetches ahead (an LL request within PACKAGER_LL_WATCH_MS)',
    registers: [metrics],
    collect() {
      this.set(llOrigin.watchedStreams());
    },
  });
  const origin = await startOrigin({
    port: config.PACKAGER_HTTP_PORT,
    bind: config.PACKAGER_HTTP_BIND,
    storage,
    llOrigin,
    logger,
  });
  ring.start();
  const service = await registerService(nc, logger, {
    name: serviceNames.packager,
    version: packageJson.version,
    description: 'HLS playlists from segment events; HTTP origin for HLS and LL-HLS',
    endpoints: [],
  });
  ready = true;
  installShutdown(logger, [
    { name: 'nats service', run: () => service.stop().then(() => undefined) },
    { name: 'lease and consumers', run: () => lease.stop() },
    { name: 'origin', run: () => origin.close() },
    { name: 'LL-HLS origin', run: async () => llOrigin.stop() },
    { name: 'origin ring', run: async () => ring.stop() },
    { name: 'nats', run: () => nc.drain() },
    { name: 'ops http', run: () => ops.close() },
  ]);
}

main().catch((error: unknown) => {
  process.stderr.write(`packager failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
