// Ingest loss: the ingest process holding a stream dies (SIGKILL) and the streamer reconnects to another
// ingest process. The stream continues in the same playlist at a new epoch after a discontinuity, with no
// ENDLIST in between. And when an ingest shuts down (SIGTERM, a rolling update) and the streamer never comes
// back, the supervisor ends the stream once no ingest has reported on it for SUPERVISOR_SOURCE_LOST_MS.
// And when only the publisher's connection drops and it comes back on another ingest (a load balancer picks
// any), the first ingest's `ended` at the end of its reconnect grace changes nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode } from '@live/bus';
import { assignmentRecord, buckets } from '@live/contracts';
import { type Child, startPublisher } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import type { MediaPlaylist } from 'hls-parser/types.js';
import { type Platform, startPlatform, waitFor } from './platform.js';
import { checkMediaPlaylist, checkReload } from './rfc8216.js';

const STREAM = 'lost';
let p: Platform;
let key: string;
const publishers: Child[] = [];
before(async () => {
  p = await startPlatform({ workers: 2, env: { SUPERVISOR_SOURCE_LOST_MS: '5000' } });
  key = await p.createKey(STREAM);
});
after(async () => {
  await Promise.all(publishers.map((c) => c.stop('SIGKILL')));
  await p?.stop();
});

const publish = (rtmpPort: number, streamKey = key) => {
  const publisher = startPublisher({
    url: p.publishUrlOn(rtmpPort, streamKey),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  publishers.push(publisher);
  return publisher;
};

/**
 * Every load of the playlist while `during` runs: none may carry ENDLIST, each reload must be consistent.
 * The packager and its origin stay up throughout, so a load that fails (network, unparsable) is a defect.
 */
async function watchPlaylist<T>(
  during: () => Promise<T>,
  streamId = STREAM,
): Promise<{ result: T; loads: MediaPlaylist[] }> {
  const loads: MediaPlaylist[] = [];
  const errors: string[] = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      const m = await p.media(streamId, '360p').catch((error: Error) => {
        errors.push(error.message);
        return null;
      });
      if (m) loads.push(m);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let result: T;
  try {
    result = await during();
  } finally {
    done = true;
    await poll;
  }
  assert.deepEqual(errors, [], 'every playlist load while the ingest was lost');
  return { result, loads };
}

test('the ingest holding the stream is SIGKILLed; the streamer reconnects elsewhere; same playlist, no ENDLIST', async () => {
  publish(p.rtmpPort);
  await waitFor(async () => ((await p.media(STREAM, '360p'))?.segments.length ?? 0) >= 3, {
    timeoutMs: 30_000,
    what: 'the stream to be live on the first ingest',
  });
  const first = p.events.find((e) => e.type === 'assigned' && e.streamId === STREAM);
  assert.ok(first?.type === 'assigned');
  const other = await p.startIngest();
  const eventsBefore = p.events.length;
  const { result: epoch, loads } = await watchPlaylist(async () => {
    await p.ingest.stop('SIGKILL');
    // OBS reconnects by itself; the Service in front of the ingest pods sends it to a live one.
    publish(other.rtmpPort);
    const assigned = await waitFor(
      () => p.events.slice(eventsBefore).find((e) => e.type === 'assigned' && e.streamId === STREAM),
      { timeoutMs: 20_000, what: 'a new assignment after the reconnect' },
    );
    assert.ok(assigned.type === 'assigned');
    await waitFor(
      async () => {
        const m = await p.media(STREAM, '360p');
        return (m?.segments.filter((s) => s.uri.startsWith(`${assigned.epoch}/`)).length ?? 0) >= 2;
      },
      { timeoutMs: 20_000, what: 'segments of the new epoch' },
    );
    return assigned.epoch;
  });
  assert.ok(epoch > first.epoch);
  const started = p.events.slice(eventsBefore).find((e) => e.type === 'started');
  assert.ok(started?.type === 'started' && started.source.url.includes(`:${other.rtmpPort}/`));
  assert.ok(!p.events.slice(eventsBefore).some((e) => e.type === 'ended'), 'no ended event');
  assert.ok(loads.length > 10, 'the playlist was watched throughout');
  assert.ok(
    loads.every((m) => !m.endlist),
    'no ENDLIST at any time',
  );
  for (let i = 1; i < loads.length; i++)
    assert.deepEqual(checkReload(loads[i - 1] as MediaPlaylist, loads[i] as MediaPlaylist), []);
  const last = loads.at(-1) as MediaPlaylist;
  assert.deepEqual(checkMediaPlaylist(last), []);
  const firstNew = last.segments.find((s) => s.uri.startsWith(`${epoch}/`));
  assert.ok(firstNew?.discontinuity, 'the new epoch starts with a discontinuity');
  assert.ok(
    last.segments.some((s) => s.uri.startsWith(`${first.epoch}/`)),
    'the old epoch is still in the window',
  );
});

test('an ingest shuts down (SIGTERM) and the streamer never returns: the supervisor ends the stream', async () => {
  const eventsBefore = p.events.length;
  const holder = p.ingests.at(-1) as Child;
  const exit = await holder.stop('SIGTERM', 10_000);
  assert.equal(exit.code, 0);
  // The ingest released the publisher without `ended` (a rolling update is not the end of a stream).
  assert.ok(!p.events.slice(eventsBefore).some((e) => e.type === 'ended' && e.sessionId !== 'supervisor'));
  const ended = await waitFor(() => p.events.slice(eventsBefore).find((e) => e.type === 'ended'), {
    timeoutMs: 15_000,
    what: 'the supervisor to end the stream',
  });
  assert.ok(ended.type === 'ended' && ended.reason === 'ingest_lost' && ended.sessionId === 'supervisor');
  await waitFor(async () => (await p.media(STREAM, '360p'))?.endlist, {
    timeoutMs: 15_000,
    what: 'ENDLIST',
  });
});

test("the publisher's connection drops and it comes back on another ingest: the first ingest's end of its grace ends nothing", async () => {
  const streamId = 'hop';
  const [first, second] = [await p.startIngest(), await p.startIngest()];
  const hopKey = await p.createKey(streamId);
  const publisher = publish(first.rtmpPort, hopKey);
  await waitFor(async () => ((await p.media(streamId, '360p'))?.segments.length ?? 0) >= 2, {
    timeoutMs: 30_000,
    what: 'the stream to be live on the first ingest',
  });
  const eventsBefore = p.events.length;
  const eventsOf = (type: string) =>
    p.events.slice(eventsBefore).filter((e) => e.streamId === streamId && e.type === type);
  const assignments = await new Kvm(p.nc).open(buckets.assignments);
  const record = async () => {
    const entry = await assignments.get(streamId);
    const d = entry?.operation === 'PUT' ? decode(assignmentRecord, entry.value) : null;
    return d?.ok ? d.value : null;
  };
  const { loads } = await watchPlaylist(async () => {
    // The publisher's connection drops (not the ingest): the first ingest waits for it (its grace, 4 s here).
    await publisher.stop('SIGKILL');
    const stalled = await waitFor(() => eventsOf('source_stalled')[0], { what: "the first ingest's stall" });
    // OBS reconnects by itself; the balancer sends it to the other ingest: a new session there.
    publish(second.rtmpPort, hopKey);
    const started = await waitFor(() => eventsOf('started')[0], {
      timeoutMs: 20_000,
      what: 'the new session on the second ingest',
    });
    assert.ok(started.type === 'started' && started.source.url.includes(`:${second.rtmpPort}/`));
    assert.notEqual(started.sessionId, stalled.sessionId);
    const assigned = await waitFor(() => eventsOf('assigned')[0], { what: 'the new session assigned' });
    assert.ok(assigned.type === 'assigned');
    // The first ingest's grace runs out: it ends the session it held.
    const ended = await waitFor(() => eventsOf('ended')[0], {
      timeoutMs: 15_000,
      what: "the first ingest's ended",
    });
    assert.ok(ended.type === 'ended' && ended.reason === 'publisher_left');
    assert.equal(ended.sessionId, stalled.sessionId);
    assert.notEqual(ended.ingestId, started.source.ingestId);
    // The stream goes on: segments keep being listed well past the packager's end settle time (1.5 s),
    // and the playlist never closes.
    const listed = (m: MediaPlaylist) => (m.mediaSequenceBase ?? 0) + m.segments.length;
    const listedAtEnd = listed((await p.media(streamId, '360p')) as MediaPlaylist);
    const last = await waitFor(
      async () => {
        const m = await p.media(streamId, '360p');
        if (m?.endlist) return m;
        return m && listed(m) - listedAtEnd >= 6 ? m : null;
      },
      { timeoutMs: 30_000, what: 'segments listed after the first ingest ended its session' },
    );
    assert.ok(!last.endlist, 'no ENDLIST after the first ingest ended its session');
    assert.ok(last.segments.at(-1)?.uri.startsWith(`${assigned.epoch}/`), 'listed from the new epoch');
    const now = await record();
    assert.equal(now?.state, 'assigned', 'the assignment stays');
    assert.equal(now?.epoch, assigned.epoch);
    assert.equal(now?.sessionId, started.sessionId);
  }, streamId);
  assert.ok(
    loads.every((m) => !m.endlist),
    'no ENDLIST at any time',
  );
  for (let i = 1; i < loads.length; i++)
    assert.deepEqual(checkReload(loads[i - 1] as MediaPlaylist, loads[i] as MediaPlaylist), []);
  assert.ok((await p.metricTotal(p.supervisor, 'supervisor_stale_events_total')) >= 1);
  assert.ok((await p.metricTotal(p.packager, 'packager_stale_ends_total')) >= 1);
});
