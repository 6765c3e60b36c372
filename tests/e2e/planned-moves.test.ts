// Failover, planned part: make-before-break moves. An operator moves a stream, an operator drains a worker,
// and a rolling restart (SIGTERM) of every transcoder runs during a live stream. In each case the new worker
// starts first and the old one stops after the new epoch's first segment, so the playlist keeps advancing at
// its normal cadence (1 s segments: no interval over 1.5 s), with one discontinuity per move and no segment
// of the old epoch after the new one.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bytes, decode } from '@live/bus';
import {
  assignmentRecord,
  buckets,
  type LifecycleEventOf,
  streamMoveReply,
  subjects,
  workerDrainReply,
} from '@live/contracts';
import { type Child, startPublisher } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import type { MediaPlaylist } from 'hls-parser/types.js';
import { type Cadence, watchCadence } from './cadence.js';
import { type Platform, startPlatform, waitFor } from './platform.js';
import { checkMediaPlaylist } from './rfc8216.js';

const STREAM = 'mv';
/** The bound for a planned move: max inter-segment interval <= 1.5 x the 1 s segment duration. */
const MAX_INTERVAL_MS = 1500;

let p: Platform;
let publisher: Child;
let cadence: Cadence;
before(async () => {
  p = await startPlatform({ workers: 2 });
  publisher = startPublisher({
    url: p.publishUrl(await p.createKey(STREAM)),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  await waitFor(async () => ((await p.media(STREAM, '360p'))?.segments.length ?? 0) >= 3, {
    timeoutMs: 30_000,
    what: 'the stream to be live',
  });
  cadence = watchCadence(p, STREAM, '360p');
});
after(async () => {
  cadence?.stop();
  await publisher?.stop('SIGKILL');
  await p?.stop();
});

async function assignment() {
  const entry = await (await new Kvm(p.nc).open(buckets.assignments)).get(STREAM);
  const d = entry ? decode(assignmentRecord, entry.value) : null;
  assert.ok(d?.ok, 'an assignment');
  return d.value;
}

const movedAfter = (count: number) =>
  waitFor(
    () =>
      p.events
        .slice(count)
        .find((e): e is LifecycleEventOf<'moved'> => e.type === 'moved' && e.streamId === STREAM),
    { timeoutMs: 20_000, what: 'a moved event' },
  );

/** The playlist after a move to `epoch`: valid, the new epoch after a discontinuity, no old epoch after it. */
async function assertSwitched(fromEpoch: number, epoch: number): Promise<MediaPlaylist> {
  const m = await waitFor(
    async () => {
      const media = await p.media(STREAM, '360p');
      const firstNew = media?.segments.findIndex((s) => s.uri.startsWith(`${epoch}/`)) ?? -1;
      // Two segments of the new epoch listed: the switch is behind us.
      return media && firstNew >= 0 && media.segments.length - firstNew >= 2 ? media : null;
    },
    { timeoutMs: 15_000, what: `segments of epoch ${epoch}` },
  );
  assert.deepEqual(checkMediaPlaylist(m), []);
  const firstNew = m.segments.findIndex((s) => s.uri.startsWith(`${epoch}/`));
  assert.ok(m.segments[firstNew]?.discontinuity, 'the new epoch starts with EXT-X-DISCONTINUITY');
  assert.ok(
    m.segments.slice(firstNew).every((s) => s.uri.startsWith(`${epoch}/`)),
    `no segment of epoch ${fromEpoch} after the switch`,
  );
  assert.ok(!m.endlist, 'no ENDLIST');
  return m;
}

test('operator move (live.ctl.stream.move): make-before-break, no gap', async () => {
  const before = await assignment();
  const eventsBefore = p.events.length;
  const startedAt = Date.now();
  const reply = await p.nc.request(subjects.ctl.streamMove, bytes(JSON.stringify({ streamId: STREAM })), {
    timeout: 20_000,
  });
  const d = decode(streamMoveReply, reply.data);
  assert.ok(d.ok, `a move reply, got ${new TextDecoder().decode(reply.data)}`);
  assert.equal(d.value.fromWorker, before.workerId);
  assert.notEqual(d.value.toWorker, before.workerId);
  assert.equal(d.value.epoch, before.epoch + 1);
  assert.ok(d.value.gapless, 'the new epoch announced a segment before the old job was stopped');
  const moved = await movedAfter(eventsBefore);
  assert.equal(moved.reason, 'operator');
  assert.equal(moved.fromEpoch, before.epoch);
  await assertSwitched(before.epoch, d.value.epoch);
  const maxInterval = cadence.maxIntervalMs(startedAt);
  console.log(
    `operator move: handover ${d.value.handoverMs} ms, max inter-segment interval ${maxInterval} ms`,
  );
  assert.ok(maxInterval <= MAX_INTERVAL_MS, `max inter-segment interval ${maxInterval} ms`);
  assert.ok(!p.events.slice(eventsBefore).some((e) => e.type === 'failover'), 'a move is not a failover');
});

test('a move is refused with a clear error when no worker can take the stream', async () => {
  const current = await assignment();
  const reply = await p.nc.request(
    subjects.ctl.streamMove,
    bytes(JSON.stringify({ streamId: STREAM, toWorker: current.workerId })),
    { timeout: 5000 },
  );
  assert.match(reply.headers?.get('Nats-Service-Error') ?? '', /already runs on/);
  const unknown = await p.nc.request(subjects.ctl.streamMove, bytes(JSON.stringify({ streamId: 'nope' })), {
    timeout: 5000,
  });
  assert.match(unknown.headers?.get('Nats-Service-Error') ?? '', /not live/);
  const invalid = await p.nc.request(subjects.ctl.streamMove, bytes('{"stream":"x"}'), { timeout: 5000 });
  assert.equal(invalid.headers?.get('Nats-Service-Error-Code'), '400');
  assert.equal((await assignment()).epoch, current.epoch, 'refusals change nothing');
});

test('operator drain (live.ctl.worker.drain): the worker hands its stream over and takes no new one', async () => {
  const before = await assignment();
  const eventsBefore = p.events.length;
  const startedAt = Date.now();
  const reply = await p.nc.request(
    subjects.ctl.workerDrain,
    bytes(JSON.stringify({ workerId: before.workerId })),
    { timeout: 5000 },
  );
  const d = decode(workerDrainReply, reply.data);
  assert.ok(d.ok, `a drain reply, got ${new TextDecoder().decode(reply.data)}`);
  assert.deepEqual(d.value.streams, [STREAM]);
  const moved = await movedAfter(eventsBefore);
  assert.equal(moved.reason, 'drain');
  assert.equal(moved.fromWorker, before.workerId);
  assert.ok(moved.gapless);
  await assertSwitched(before.epoch, moved.epoch);
  const maxInterval = cadence.maxIntervalMs(startedAt);
  console.log(`drain: handover ${moved.handoverMs} ms, max inter-segment interval ${maxInterval} ms`);
  assert.ok(maxInterval <= MAX_INTERVAL_MS, `max inter-segment interval ${maxInterval} ms`);
  // The drained worker is no standby any more: a move now finds nobody.
  const refused = await p.nc.request(subjects.ctl.streamMove, bytes(JSON.stringify({ streamId: STREAM })), {
    timeout: 5000,
  });
  assert.match(refused.headers?.get('Nats-Service-Error') ?? '', /no standby/);
});

test('rolling restart (SIGTERM of every transcoder, one at a time): the playlist never stalls', async () => {
  const startedAt = Date.now();
  const eventsBefore = p.events.length;
  const original = [...p.workers];
  for (const old of original) {
    // As a Deployment's rolling update does: the new pod is up before the old one gets SIGTERM.
    p.workers.push(await p.startWorker());
    const exit = await old.stop('SIGTERM', 30_000);
    assert.equal(
      exit.code,
      0,
      `the worker drained and exited cleanly; its last lines:\n${old.tail().slice(-15).join('\n')}`,
    );
    p.workers.splice(p.workers.indexOf(old), 1);
  }
  const current = await assignment();
  assert.ok(!['w1', 'w2'].includes(current.workerId), `now on a new worker (${current.workerId})`);
  await assertSwitched(current.epoch - 1, current.epoch);
  // Published right after the old job's revoke, which is what let that worker exit.
  const moves = await waitFor(
    () => {
      const found = p.events.slice(eventsBefore).filter((e) => e.type === 'moved');
      return found.length > 0 ? found : null;
    },
    { what: 'the active stream to have moved' },
  );
  assert.ok(moves.every((e) => e.type === 'moved' && e.reason === 'drain' && e.gapless));
  assert.ok(!p.events.slice(eventsBefore).some((e) => e.type === 'failover' || e.type === 'ended'));
  const maxInterval = cadence.maxIntervalMs(startedAt);
  console.log(`rolling restart: ${moves.length} move(s), max inter-segment interval ${maxInterval} ms`);
  assert.ok(maxInterval <= MAX_INTERVAL_MS, `max inter-segment interval ${maxInterval} ms`);
});
