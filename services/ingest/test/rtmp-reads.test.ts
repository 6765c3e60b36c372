// The RTMP server's batched reads, in process, with a raw RTMP publisher and hooks that see each packet as
// the server parses it: reads are batched only once the source is announced (its start is not delayed),
// and a burst larger than one read (a high-bitrate source, or what piled up while the ingest was busy) is
// read and relayed at once, not 64 KiB per read interval.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '@live/log';
import { RawRtmpClient, waitFor } from '@live/testing';
import { IngestRtmpServer } from '../src/rtmp/rtmp-server.js';

const READ_INTERVAL_MS = 50;
const packetsAt: number[] = [];
let reads = 0;
/** What the hooks say of the publisher's source (LiveStreams: true once `started` is out). */
let announced = false;
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
      announced: () => announced,
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

const frame = (bytes: number) => Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), Buffer.alloc(bytes)]);
let timestamp = 0;
/** The next frame's RTMP timestamp (30 fps). */
const nextTimestamp = () => {
  timestamp += 33;
  return timestamp;
};

/**
 * Frames sent one at a time, each after the server has parsed the one before: the median round trip in ms
 * (a median, so that one pause of a busy machine does not decide).
 */
async function pingPong(publisher: RawRtmpClient, frames: number): Promise<number> {
  const roundTrips: number[] = [];
  for (let i = 0; i < frames; i++) {
    const seen = packetsAt.length;
    const sentAt = performance.now();
    publisher.message(6, 9, 1, frame(100), nextTimestamp());
    await waitFor(() => packetsAt.length > seen, { what: `frame ${i}`, intervalMs: 1 });
    roundTrips.push(performance.now() - sentAt);
  }
  return roundTrips.sort((a, b) => a - b)[Math.floor(frames / 2)] as number;
}

test('until the source is announced every read is at once; then reads are one per interval', async (t) => {
  client = await RawRtmpClient.connect(port);
  client.socket.setNoDelay(true); // each frame its own segment at once, as encoders send them
  await client.handshake();
  client.connectApp('live', port);
  client.command('publish', 3, null, 'key', 'live');
  const before = await pingPong(client, 10);
  announced = true;
  await pingPong(client, 1); // the read that starts the batching
  const after = await pingPong(client, 10);
  t.diagnostic(
    `median round trip per frame: ${before.toFixed(1)} ms before the announcement, ${after.toFixed(1)} ms after`,
  );
  // Batched, a frame sent right after a read waits for the next one: about the interval. Before, it is
  // read as it comes (the start's codec headers and keyframe are not held back).
  assert.ok(before < READ_INTERVAL_MS / 2, `${before.toFixed(1)} ms per frame before the announcement`);
  assert.ok(after > READ_INTERVAL_MS * 0.8, `${after.toFixed(1)} ms per frame once announced`);
});

test('a burst larger than one read is read on at once, not 64 KiB per read interval', async (t) => {
  // The publisher of the test above, announced: its reads are batched.
  const publisher = client ?? assert.fail('no publisher');

  // 40 frames of 60 KB at once: 2.4 MB, about 37 reads of 64 KiB.
  const frames = 40;
  const readsBefore = reads;
  const packetsBefore = packetsAt.length;
  const sentAt = performance.now();
  for (let i = 1; i <= frames; i++) publisher.message(6, 9, 1, frame(60_000), nextTimestamp());
  await waitFor(() => packetsAt.length >= packetsBefore + frames, {
    what: `${frames} frames`,
    timeoutMs: 10_000,
  });
  const tookMs = (packetsAt.at(-1) as number) - sentAt;
  t.diagnostic(
    `${frames} frames of 60 KB relayed ${tookMs.toFixed(0)} ms after they were sent, in ${reads - readsBefore} reads`,
  );
  // One read interval's stop per 64 KiB would take ~37 x 50 ms = 1.85 s; read on, it is a matter of the
  // loopback's speed (~0.1 s). Twenty intervals leave room for a busy machine (a read that comes back short
  // mid-burst waits one) and still tell the two apart.
  assert.ok(tookMs < 20 * READ_INTERVAL_MS, `the burst took ${tookMs.toFixed(0)} ms to be read`);
  assert.ok(reads - readsBefore >= 37, 'every 64 KiB of the burst was a read of its own');
});
