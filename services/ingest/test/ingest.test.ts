// The ingest service end to end: real nats-server, real ingest process, real ffmpeg publishers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bytes, text } from '@live/bus';
import { subjects } from '@live/contracts';
import {
  type Child,
  ffprobe,
  RawRtmpClient,
  sendMalformedRequests,
  startPublisher,
  waitFor,
  within,
} from '@live/testing';
import { type IngestHarness, startIngestHarness } from './harness.js';

let h: IngestHarness;
const publishers: Child[] = [];
const publish = (key: string, extra: Partial<Parameters<typeof startPublisher>[0]> = {}) => {
  const p = startPublisher({
    url: h.publishUrl(key),
    width: 320,
    height: 180,
    fps: 30,
    gopSeconds: 1,
    ...extra,
  });
  publishers.push(p);
  return p;
};

before(async () => {
  h = await startIngestHarness();
});
after(async () => {
  await Promise.all(publishers.map((p) => p.stop('SIGKILL')));
  await h?.stop();
});

test('a valid key goes live: started carries the source description and an internal pull URL', async () => {
  const key = await h.createKey('alpha');
  const publisher = publish(key);
  const started = await h.waitForEvent('alpha', 'started');
  assert.equal(started.source.video.codec, 'h264');
  assert.equal(started.source.video.width, 320);
  assert.equal(started.source.video.height, 180);
  assert.equal(started.source.video.fps, 30);
  assert.equal(started.source.video.chromaFormat, 1);
  assert.deepEqual(started.source.audio, { codec: 'aac', sampleRate: 48000, channels: 1 });
  assert.match(started.source.url, new RegExp(`^rtmp://127\\.0\\.0\\.1:${h.rtmpPort}/src/alpha\\?token=`));
  assert.ok(!started.source.url.includes(key), 'the stream key never leaves ingest');
  assert.ok(started.acceptedAt <= Date.parse(started.at));

  // Health about 5 times a second, with real rates.
  const firstHealth = h.health.length;
  await waitFor(() => h.health.slice(firstHealth).filter((m) => m.streamId === 'alpha').length >= 10, {
    what: '10 health messages',
  });
  const recent = h.health.filter((m) => m.streamId === 'alpha').slice(-5);
  for (const m of recent) {
    assert.equal(m.state, 'live');
    assert.ok(m.bytesPerSec > 1000, `bytes/s ${m.bytesPerSec}`);
    assert.ok(m.fps > 20 && m.fps < 40, `fps ${m.fps}`);
  }
  assert.equal(recent.at(-1)?.keyframeIntervalMs, 1000);

  // A transcoder pulls by the internal URL: allowed with the token, refused without.
  const streams = await ffprobe(started.source.url);
  assert.ok(streams.some((s) => s.codec_type === 'video' && s.width === 320));
  await assert.rejects(ffprobe(started.source.url.replace(/\?token=.*/, '')));
  await assert.rejects(ffprobe(`rtmp://127.0.0.1:${h.rtmpPort}/live/${key}`));

  // Publisher leaves -> source_stalled (disconnected) -> ended after the grace period.
  const before = h.events.length;
  await publisher.stop('SIGKILL');
  const stalled = await h.waitForEvent('alpha', 'source_stalled', { after: before });
  assert.equal(stalled.disconnected, true);
  const ended = await h.waitForEvent('alpha', 'ended', { after: before, timeoutMs: 8000 });
  assert.equal(ended.reason, 'publisher_left');
  assert.deepEqual(
    h.eventsOf('alpha').map((e) => e.type),
    ['started', 'source_stalled', 'ended'],
  );
  assert.ok(h.eventsOf('alpha').every((e) => e.sessionId === started.sessionId));
  assert.deepEqual(h.invalid, []);
});

test('a publisher that stops (RTMP deleteStream, as OBS and ffmpeg send) ends the stream at once, without a grace', async () => {
  const key = await h.createKey('stopper');
  // A 2 s source: ffmpeg reaches the end of its input, sends deleteStream and hangs up.
  const publisher = publish(key, { durationSec: 2 });
  const started = await h.waitForEvent('stopper', 'started');
  const exit = await within(publisher.exited, 15_000, 'the 2 s publisher to finish');
  assert.equal(exit.code, 0);
  const exitedAt = Date.now();
  const ended = await h.waitForEvent('stopper', 'ended', { timeoutMs: 10_000 });
  assert.equal(ended.reason, 'publisher_stopped');
  assert.equal(ended.sessionId, started.sessionId);
  // The harness's reconnect grace is 3 s: the end came long before it would have run out.
  const afterExitMs = Date.parse(ended.at) - exitedAt;
  assert.ok(afterExitMs < 1000, `ended ${afterExitMs} ms after the publisher exited`);
  assert.deepEqual(
    h.eventsOf('stopper').map((e) => e.type),
    ['started', 'ended'],
  );
});

test('an unknown key is refused at once and leaves no ghost publisher behind', async () => {
  const bad = publish('live_not_a_key');
  const exit = await within(bad.exited, 5000, 'ffmpeg with a bad key to be refused');
  assert.notEqual(exit.code, 0);
  assert.equal(h.eventsOf('live_not_a_key').length, 0);
  // The refused path holds nothing: a legitimate stream is unaffected and nothing is playable there.
  await assert.rejects(ffprobe(`rtmp://127.0.0.1:${h.rtmpPort}/src/live_not_a_key`, 3000));
  assert.ok(
    h.logs.some(
      (l) => l.message === 'RTMP connection refused' && l.reason === 'unknown or revoked stream key',
    ),
  );
  assert.ok(
    !h.logs.some(
      (l) => JSON.stringify(l).includes('live_not_a_key') && l.message !== 'RTMP connection refused',
    ),
  );
});

test('a source stall is reported within a second, and its end as source_resumed', async () => {
  const key = await h.createKey('stall');
  const publisher = publish(key);
  await h.waitForEvent('stall', 'started');
  await waitFor(() => h.health.some((m) => m.streamId === 'stall' && m.bytesPerSec > 0), {
    what: 'stall health',
  });
  const before = h.events.length;
  const stoppedAt = Date.now();
  publisher.signal('SIGSTOP');
  const stalled = await h.waitForEvent('stall', 'source_stalled', { after: before, timeoutMs: 5000 });
  const reportedAfter = Date.parse(stalled.at) - stoppedAt;
  assert.equal(stalled.disconnected, false);
  assert.ok(reportedAfter < 1000, `stall reported ${reportedAfter} ms after the publisher stopped`);
  publisher.signal('SIGCONT');
  const resumed = await h.waitForEvent('stall', 'source_resumed', { after: before });
  assert.equal(resumed.reason, 'data');
  await publisher.stop('SIGKILL');
});

test('a publisher that reconnects within the grace period continues the same stream', async () => {
  const key = await h.createKey('recon');
  const first = publish(key);
  const started = await h.waitForEvent('recon', 'started');
  const before = h.events.length;
  await first.stop('SIGKILL');
  await h.waitForEvent('recon', 'source_stalled', { after: before });
  const second = publish(key);
  const resumed = await h.waitForEvent('recon', 'source_resumed', { after: before });
  assert.equal(resumed.reason, 'reconnect');
  assert.equal(resumed.sessionId, started.sessionId);
  assert.ok(resumed.source, 'the new source is described');
  // The grace period passes without an `ended`.
  await waitFor(
    () => h.health.filter((m) => m.streamId === 'recon' && m.at > Date.parse(resumed.at) + 3500).length > 0,
    {
      what: 'health past the grace period',
    },
  );
  assert.ok(!h.eventsOf('recon').some((e) => e.type === 'ended'));
  await second.stop('SIGKILL');
});

test('a second publisher on a live key takes over; the first is disconnected', async () => {
  const key = await h.createKey('takeover');
  const first = publish(key);
  const started = await h.waitForEvent('takeover', 'started');
  const before = h.events.length;
  const second = publish(key);
  const resumed = await h.waitForEvent('takeover', 'source_resumed', { after: before });
  assert.equal(resumed.reason, 'takeover');
  assert.equal(resumed.sessionId, started.sessionId);
  await within(first.exited, 10_000, 'the first publisher to be disconnected');
  assert.ok(!second.hasExited());
  assert.ok(!h.eventsOf('takeover').some((e) => e.type === 'ended'));
  await second.stop('SIGKILL');
});

test('revoking a key refuses it from then on and disconnects its live publisher', async () => {
  const key = await h.createKey('revoke');
  const publisher = publish(key);
  await h.waitForEvent('revoke', 'started');
  const reply = await h.nc.request(subjects.ctl.keysRevoke, bytes(JSON.stringify({ streamId: 'revoke' })), {
    timeout: 5000,
  });
  assert.deepEqual(JSON.parse(text(reply.data)), { revoked: 1, kicked: 1 });
  const ended = await h.waitForEvent('revoke', 'ended');
  assert.equal(ended.reason, 'key_revoked');
  await within(publisher.exited, 5000, 'the publisher to be disconnected');
  const again = publish(key);
  assert.notEqual((await within(again.exited, 5000, 'the revoked key to be refused')).code, 0);
});

test('a source the ladder cannot take (4:4:4 H.264) is refused with a reason for the streamer', async () => {
  const key = await h.createKey('yuv444');
  const publisher = publish(key, { pixelFormat: 'yuv444p' });
  const rejected = await h.waitForEvent('yuv444', 'rejected');
  assert.match(rejected.reason, /4:4:4 8-bit H\.264; send 8-bit 4:2:0/);
  await within(publisher.exited, 5000, 'the publisher to be disconnected');
  assert.ok(!h.eventsOf('yuv444').some((e) => e.type === 'started'));
});

test('bad RTMP input is refused per connection while a live stream keeps flowing', async () => {
  const key = await h.createKey('steady');
  const publisher = publish(key);
  await h.waitForEvent('steady', 'started');
  const port = h.rtmpPort;

  // 1. Garbage bytes.
  const garbage = await RawRtmpClient.connect(port);
  garbage.write(Buffer.alloc(5000, 0xff));
  // 2. A client that connects and says nothing (closed at the handshake timeout).
  const silent = await RawRtmpClient.connect(port);
  // 3. A malformed connect (no tcUrl: NMS would throw out of its socket handler).
  const malformed = await RawRtmpClient.connect(port);
  await malformed.handshake();
  malformed.command('connect', 1, { app: 'live' });
  // 4. A stream name with odd characters.
  const odd = await RawRtmpClient.connect(port);
  await odd.handshake();
  odd.connectApp('live', port);
  odd.command('publish', 3, null, '../../etc/passwd', 'live');
  // 5. A huge metadata packet from a publisher with a valid key.
  const hugeKey = await h.createKey('huge');
  const huge = await RawRtmpClient.connect(port);
  await huge.handshake();
  huge.connectApp('live', port);
  huge.command('publish', 3, null, hugeKey, 'live');
  huge.metadata(1024 * 1024);
  // 6. A message header declaring 16 MiB on many chunk streams (allocation attack).
  const alloc = await RawRtmpClient.connect(port);
  await alloc.handshake();
  const header = Buffer.alloc(12);
  header[0] = 6;
  header.writeUIntBE(0xffffff, 4, 3);
  header[7] = 9;
  // NMS sizes the buffer when the first payload byte arrives.
  alloc.write(Buffer.concat([header, Buffer.from([0x17])]));

  // 7. Hostile HTTP (and binary, and WebSocket upgrades) to the RTMP port and to the ops port: the ingest
  // closes each of those RTMP connections itself (by the handshake timeout at the latest).
  const [toRtmp] = await Promise.all([
    sendMalformedRequests(port, '127.0.0.1', { timeoutMs: 5000 }),
    sendMalformedRequests(h.opsPort),
  ]);
  for (const r of toRtmp) {
    assert.equal(r.status, null, `${r.name}: no HTTP answer from the RTMP port`);
    assert.ok(r.end !== 'timeout' && r.end !== 'refused', `${r.name}: closed by the ingest (${r.end})`);
  }

  for (const [name, client] of Object.entries({ garbage, silent, malformed, odd, huge, alloc })) {
    await within(client.closed, 5000, `the server to close the ${name} connection`);
  }
  const refusals = h.logs.filter((l) => l.message === 'RTMP connection refused');
  const reasons = refusals.map((l) => String(l.reason));
  assert.ok(
    reasons.some((r) => /no publish or play within/.test(r)),
    'silent client timed out',
  );
  assert.ok(
    reasons.some((r) => /malformed RTMP/.test(r)),
    'malformed connect refused',
  );
  assert.ok(
    reasons.some((r) => /characters outside/.test(r)),
    'odd name refused',
  );
  assert.ok(
    reasons.some((r) => /metadata\/command message of \d+ bytes/.test(r)),
    'huge metadata refused',
  );
  assert.ok(
    reasons.some((r) => /message of 16777215 bytes/.test(r)),
    `huge message refused: ${reasons.join(' / ')}`,
  );
  assert.equal(h.eventsOf('huge').length, 0);

  // Each refused connection logged once.
  const conns = refusals.map((l) => l.conn);
  assert.equal(new Set(conns).size, conns.length);

  // The live stream never noticed.
  const since = Date.now();
  await waitFor(() => h.health.filter((m) => m.streamId === 'steady' && m.at > since).length >= 5, {
    what: 'health',
  });
  assert.ok(!h.eventsOf('steady').some((e) => e.type !== 'started'));
  assert.ok(!h.ingest.hasExited());
  assert.equal((await fetch(`http://127.0.0.1:${h.opsPort}/healthz`)).status, 200);
  await publisher.stop('SIGKILL');
});

test('the ingest registers with the NATS services framework ($SRV.PING / INFO)', async () => {
  const ping = JSON.parse(
    text((await h.nc.request('$SRV.PING.live-ingest', undefined, { timeout: 2000 })).data),
  );
  assert.equal(ping.name, 'live-ingest');
  const info = JSON.parse(
    text((await h.nc.request('$SRV.INFO.live-ingest', undefined, { timeout: 2000 })).data),
  );
  assert.deepEqual(
    info.endpoints.map((e: { subject: string }) => e.subject).sort(),
    [subjects.ctl.keysCreate, subjects.ctl.keysRevoke].sort(),
  );
});

test('operator requests are validated: a bad stream id gets a clear error', async () => {
  const reply = await h.nc.request(subjects.ctl.keysCreate, bytes('{"streamId":"Bad Id!"}'), {
    timeout: 2000,
  });
  assert.equal(reply.headers?.get('Nats-Service-Error-Code'), '400');
  assert.match(JSON.parse(text(reply.data)).error, /streamId: stream id must match/);
  const metrics = await (await fetch(`http://127.0.0.1:${h.opsPort}/metrics`)).text();
  assert.match(metrics, /ingest_rtmp_refused_total\{kind="auth",service="ingest"\} [1-9]/);
});
