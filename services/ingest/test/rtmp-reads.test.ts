// The RTMP server's batched reads, in process: a publisher's burst larger than one read (a high-bitrate
// source, or what piled up while the ingest was busy) is read and relayed at once, not 64 KiB per read
// interval. A raw RTMP publisher sends the burst; the hooks see each packet as the server parses it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '@live/log';
import { RawRtmpClient, waitFor } from '@live/testing';
import { IngestRtmpServer } from '../src/rtmp/rtmp-server.js';

const READ_INTERVAL_MS = 50;
const packetsAt: number[] = [];
let reads = 0;
let server: IngestRtmpServer;
let port: number;
let client: RawRtmpClient | undefined;

before(async () => {
  server = new IngestRtmpServer({
    bind: '127.0.0.1',
    port: 0,
    app: 'live',
    handshakeTimeoutMs: 5000,
    maxMessageBytes: 8 * 1024 * 1024,
    maxMetadataBytes: 64 * 1024,
    readIntervalMs: READ_INTERVAL_MS,
    logger: createLogger({ service: 'rtmp-reads-test', level: 'fatal' }),
    hooks: {
      authorizePublish: () => ({ ok: true, streamId: 'burst' }),
      published: () => {},
      authorizePlay: () => 'not in this test',
      packet: () => packetsAt.push(performance.now()),
      data: () => {},
      publisherClosed: () => {},
    },
    onPublisherRead: () => reads++,
  });
  port = await server.listen();
});
after(async () => {
  client?.close();
  await server.close();
});

test('a burst larger than one read is read on at once, not 64 KiB per read interval', async (t) => {
  client = await RawRtmpClient.connect(port);
  await client.handshake();
  client.connectApp('live', port);
  client.command('publish', 3, null, 'key', 'live');
  // One small frame first: the publish is accepted and the batched reads have begun.
  const frame = (bytes: number) => Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), Buffer.alloc(bytes)]);
  client.message(6, 9, 1, frame(100), 0);
  await waitFor(() => packetsAt.length >= 1, { what: 'the first frame' });

  // 40 frames of 60 KB at once: 2.4 MB, about 37 reads of 64 KiB.
  const frames = 40;
  const readsBefore = reads;
  const sentAt = performance.now();
  for (let i = 1; i <= frames; i++) client.message(6, 9, 1, frame(60_000), i * 33);
  await waitFor(() => packetsAt.length >= 1 + frames, { what: `${frames} frames`, timeoutMs: 10_000 });
  const tookMs = (packetsAt.at(-1) as number) - sentAt;
  t.diagnostic(
    `${frames} frames of 60 KB relayed ${tookMs.toFixed(0)} ms after they were sent, in ${reads - readsBefore} reads`,
  );
  // One read interval's stop per 64 KiB would take ~37 x 50 ms = 1.85 s; read on, it is a matter of the
  // loopback's speed. Ten intervals leave room for a busy machine (a read that comes back short mid-burst waits one) and still tell the two apart.
  assert.ok(tookMs < 10 * READ_INTERVAL_MS, `the burst took ${tookMs.toFixed(0)} ms to be read`);
  assert.ok(reads - readsBefore >= 37, 'every 64 KiB of the burst was a read of its own');
});
