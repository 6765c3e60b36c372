import { parseArgs } from 'node:util';
import { bytes, connectBus, decode } from '@live/bus';
import { createKeyReply, ingestHealth, lifecycleEvent, subjects } from '@live/contracts';
import { createLogger } from '@live/log';
import {
  type Child,
  freePort,
  startNatsServer,
  startPublisher,
  startServiceProcess,
  waitFor,
} from '@live/testing';
import { cachedClip, cpuSeconds, percentile, printTable, rssBytes, writeJson } from './lib.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '20' },
    ramp: { type: 'string', default: '10' },
    json: { type: 'string' },
  },
});
const streams = Number(values.streams);
const windowSec = Number(values.seconds);
const rampPerSec = Number(values.ramp);

const logger = createLogger({ service: 'bench', level: 'warn' });
const clip = await cachedClip('clip-360p-2500k.flv', 10, 2400);

const nats = await startNatsServer('bench');
const nc = await connectBus({ servers: [nats.url], name: 'bench', logger });
const rtmpPort = await freePort();
const opsPort = await freePort();
const ingest = await startServiceProcess({
  service: 'ingest',
  opsPort,
  env: {
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    INGEST_BIND: '127.0.0.1',
    INGEST_RTMP_PORT: String(rtmpPort),
    INGEST_OPS_PORT: String(opsPort),
  },
});
const publishers: Child[] = [];
const stop = async () => {
  await Promise.all(publishers.map((p) => p.stop('SIGKILL')));
  await ingest.stop();
  await nc.close();
  await nats.dispose();
};

try {
  const startedLatency = new Map<string, number>();
  /** Of which: accepted -> event emitted (waiting for the source's codec headers) and emitted -> received. */
  const waitForSource: number[] = [];
  const delivery: number[] = [];
  const stalls: string[] = [];
  nc.subscribe(subjects.allStreamEvents, {
    callback: (_e, m) => {
      const received = Date.now();
      const d = decode(lifecycleEvent, m.data);
      if (!d.ok) return;
      if (d.value.type === 'started') {
        startedLatency.set(d.value.streamId, received - d.value.acceptedAt);
        waitForSource.push(Date.parse(d.value.at) - d.value.acceptedAt);
        delivery.push(received - Date.parse(d.value.at));
      }
      if (d.value.type === 'source_stalled') stalls.push(d.value.streamId);
    },
  });
  const rates = new Map<string, number[]>();
  let measuring = false;
  nc.subscribe(subjects.allIngestHealth, {
    callback: (_e, m) => {
      const d = decode(ingestHealth, m.data);
      if (d.ok && measuring) {
        const list = rates.get(d.value.streamId) ?? [];
        list.push(d.value.bytesPerSec);
        rates.set(d.value.streamId, list);
      }
    },
  });

  // Idle cost of the ingest process (health loop, NATS), to separate it from the per-stream cost.
  const idleCpu0 = cpuSeconds(ingest.pid);
  const idleT0 = Date.now();
  await new Promise((r) => setTimeout(r, 3000));
  const idleCpuPerSec = (cpuSeconds(ingest.pid) - idleCpu0) / ((Date.now() - idleT0) / 1000);
  const idleRss = rssBytes(ingest.pid);

  const keys: string[] = [];
  for (let i = 0; i < streams; i++) {
    const reply = await nc.request(
      subjects.ctl.keysCreate,
      bytes(JSON.stringify({ streamId: `bench-${i}` })),
      { timeout: 5000 },
    );
    const d = decode(createKeyReply, reply.data);
    if (!d.ok) throw new Error('key creation failed');
    keys.push(d.value.streamKey);
  }
  console.log(`starting ${streams} publishers at ${rampPerSec}/s...`);
  for (const key of keys) {
    publishers.push(startPublisher({ url: `rtmp://127.0.0.1:${rtmpPort}/live/${key}`, inputFile: clip }));
    await new Promise((r) => setTimeout(r, 1000 / rampPerSec));
  }
  await waitFor(() => startedLatency.size >= streams, {
    timeoutMs: 60_000,
    what: `${streams} started events`,
  });
  const failedPublishers = publishers.filter((p) => p.hasExited()).length;

  console.log(`all ${streams} live; measuring for ${windowSec} s...`);
  measuring = true;
  const cpu0 = cpuSeconds(ingest.pid);
  const t0 = Date.now();
  const rssSamples: number[] = [];
  while (Date.now() - t0 < windowSec * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    rssSamples.push(rssBytes(ingest.pid));
  }
  const cpuPerSec = (cpuSeconds(ingest.pid) - cpu0) / ((Date.now() - t0) / 1000);
  measuring = false;

  const latencies = [...startedLatency.values()];
  const medianRates = [...rates.values()].map((list) => percentile(list, 50));
  const mbpsPerStream = (percentile(medianRates, 50) * 8) / 1e6;
  const rss = percentile(rssSamples, 50);
  const result = {
    streams,
    windowSec,
    clip: '640x360 H.264 CBR 2.4 Mbit/s + AAC 128 kbit/s, -c copy',
    ingestCpuCoresTotal: +cpuPerSec.toFixed(3),
    ingestCpuCoresIdle: +idleCpuPerSec.toFixed(3),
    ingestCpuPercentOfCorePerStream: +(((cpuPerSec - idleCpuPerSec) / streams) * 100).toFixed(3),
    ingestRssMiB: +(rss / 2 ** 20).toFixed(1),
    ingestRssMiBPerStream: +((rss - idleRss) / streams / 2 ** 20).toFixed(2),
    receivedMbpsPerStreamMedian: +mbpsPerStream.toFixed(2),
    receivedMbpsTotal: +((medianRates.reduce((a, b) => a + b, 0) * 8) / 1e6).toFixed(1),
    startedLatencyMs: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
    },
    startedWaitForSourceMs: { p50: percentile(waitForSource, 50), p99: percentile(waitForSource, 99) },
    startedDeliveryMs: { p50: percentile(delivery, 50), p99: percentile(delivery, 99) },
    sourceStallsDuringRun: stalls.length,
    publishersExited: failedPublishers,
  };
  printTable(`bench:ingest — ${streams} publishers into one ingest process`, [
    ['ingest CPU, all streams (cores)', result.ingestCpuCoresTotal, '< 1.0 for 50 streams'],
    ['ingest CPU idle (cores)', result.ingestCpuCoresIdle],
    ['CPU per stream (% of a core)', result.ingestCpuPercentOfCorePerStream, '< 2 %'],
    ['ingest RSS (MiB)', result.ingestRssMiB],
    ['RSS per stream (MiB)', result.ingestRssMiBPerStream],
    ['received per stream (Mbit/s, median)', result.receivedMbpsPerStreamMedian, '~2.5'],
    ['received total (Mbit/s)', result.receivedMbpsTotal],
    ['started latency p50 (ms)', result.startedLatencyMs.p50],
    ['started latency p99 (ms)', result.startedLatencyMs.p99, '< 50'],
    ['  of which waiting for codec headers p99', result.startedWaitForSourceMs.p99],
    ['  of which event delivery p99 (ms)', result.startedDeliveryMs.p99],
    ['source stalls during the run', result.sourceStallsDuringRun, '0'],
  ]);
  writeJson(values.json, result);
} finally {
  await stop();
}
