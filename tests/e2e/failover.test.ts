// Failover, first part: a transcoder fault moves the stream to the warm standby at a new epoch; a source
// stall does not. Real processes: the active worker is killed with SIGKILL.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode } from '@live/bus';
import { assignmentRecord, buckets } from '@live/contracts';
import { type Child, pidsByCommandLine, readLlPlaylist, startPublisher } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import { type Platform, startPlatform, waitFor } from './platform.js';
import { checkMediaPlaylist, checkReload } from './rfc8216.js';

let p: Platform;
let publisher: Child;
before(async () => {
  p = await startPlatform({ workers: 2 });
  publisher = startPublisher({
    url: p.publishUrl(await p.createKey('fo')),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  await waitFor(async () => ((await p.media('fo', '360p'))?.segments.length ?? 0) >= 3, {
    timeoutMs: 30_000,
    what: 'the stream to be live',
  });
});
after(async () => {
  await publisher?.stop('SIGKILL');
  await p?.stop();
});

async function assignment() {
  const entry = await (await new Kvm(p.nc).open(buckets.assignments)).get('fo');
  const d = entry ? decode(assignmentRecord, entry.value) : null;
  return d?.ok ? d.value : null;
}

test('a source stall (the streamer) is not a transcoder fault: no failover', async () => {
  const before = await assignment();
  const eventsBefore = p.events.length;
  publisher.signal('SIGSTOP');
  await waitFor(() => p.events.slice(eventsBefore).some((e) => e.type === 'source_stalled'), {
    what: 'source_stalled',
  });
  // Stay stalled for several detection periods, then resume.
  const stalledAt = Date.now();
  await waitFor(() => Date.now() - stalledAt > 2500, { intervalMs: 100, what: 'a long source stall' });
  publisher.signal('SIGCONT');
  await waitFor(() => p.events.slice(eventsBefore).some((e) => e.type === 'source_resumed'), {
    what: 'source_resumed',
  });
  const resumedAt = Date.now();
  await waitFor(() => Date.now() - resumedAt > 2000, {
    intervalMs: 100,
    what: 'time for a wrong failover to show',
  });
  assert.ok(
    !p.events.slice(eventsBefore).some((e) => e.type === 'failover'),
    'no failover for a source stall',
  );
  assert.equal((await assignment())?.epoch, before?.epoch);
});

test('a supervisor paused past the stall threshold (SIGSTOP 700 ms) wakes without failing anything over', async () => {
  const before = await assignment();
  const eventsBefore = p.events.length;
  // 700 ms: past SUPERVISOR_STALL_MS (450 ms), short of SUPERVISOR_WORKER_TIMEOUT_MS (1 s, so the standby
  // still counts as alive) and inside the lease (1.5 s): on waking it is still the leader, and the heartbeats
  // that came meanwhile are still unread in its socket.
  p.supervisor.signal('SIGSTOP');
  const stoppedAt = Date.now();
  await waitFor(() => Date.now() - stoppedAt > 700, { intervalMs: 20, what: 'the pause' });
  p.supervisor.signal('SIGCONT');
  const resumedAt = Date.now();
  // Three more segments listed at the same epoch: the stream stayed where it was.
  const lastBefore = (await p.media('fo', '360p'))?.segments.at(-1)?.mediaSequenceNumber ?? 0;
  await waitFor(
    async () => ((await p.media('fo', '360p'))?.segments.at(-1)?.mediaSequenceNumber ?? 0) >= lastBefore + 3,
    { timeoutMs: 15_000, what: 'three more segments after the pause' },
  );
  assert.ok(Date.now() - resumedAt > 1000, 'watched for more than twice the stall threshold');
  assert.deepEqual(
    p.events.slice(eventsBefore).filter((e) => e.type === 'failover' || e.type === 'assigned'),
    [],
    'no failover after the supervisor woke',
  );
  assert.equal((await assignment())?.epoch, before?.epoch);
});

/** The pid of the ffmpeg transcoding this stream at this epoch (its command line names its work folder). */
const ffmpegOf = (epoch: number): number | undefined =>
  pidsByCommandLine((cmd) => cmd.startsWith('ffmpeg') && cmd.includes(`/fo-${epoch}/`))[0];

test('SIGSTOP of the active ffmpeg (worker alive, encoder stuck): failover as stalled', async () => {
  const before = await assignment();
  assert.ok(before);
  const pid = await waitFor(() => ffmpegOf(before.epoch), { what: 'the active ffmpeg' });
  const eventsBefore = p.events.length;
  process.kill(pid, 'SIGSTOP');
  const failover = await waitFor(() => p.events.slice(eventsBefore).find((e) => e.type === 'failover'), {
    timeoutMs: 10_000,
    what: 'the failover event',
  });
  assert.ok(
    failover.type === 'failover' && failover.reason === 'stalled' && failover.fromWorker === before.workerId,
  );
  assert.ok(failover.detectionMs < 1500, `detected after ${failover.detectionMs} ms`);
  // The stuck ffmpeg is stopped by its worker (revoke), so that worker is a standby again.
  await waitFor(() => ffmpegOf(before.epoch) === undefined, {
    timeoutMs: 10_000,
    what: 'the stuck ffmpeg to be gone',
  });
  await waitFor(
    async () => (await p.media('fo', '360p'))?.segments.some((s) => s.uri.startsWith(`${failover.epoch}/`)),
    {
      timeoutMs: 15_000,
      what: 'segments of the new epoch',
    },
  );
});

test('a zombie (whole worker paused until its stream moved, then resumed) puts nothing in the playlist and stops its ffmpeg', async () => {
  const before = await assignment();
  assert.ok(before);
  const zombie = p.workers[Number(before.workerId.replace('w', '')) - 1] as Child;
  await waitFor(() => ffmpegOf(before.epoch), { what: 'the active ffmpeg' });
  const eventsBefore = p.events.length;
  zombie.signal('SIGSTOP');
  const failover = await waitFor(() => p.events.slice(eventsBefore).find((e) => e.type === 'failover'), {
    timeoutMs: 10_000,
    what: 'the failover away from the paused worker',
  });
  assert.ok(failover.type === 'failover' && failover.reason === 'worker_lost');
  await waitFor(
    async () => (await p.media('fo', '360p'))?.segments.some((s) => s.uri.startsWith(`${failover.epoch}/`)),
    {
      timeoutMs: 15_000,
      what: 'segments of the new epoch',
    },
  );
  // Meanwhile the zombie's ffmpeg kept encoding into its work folder; now the worker wakes up.
  const resumedAt = Date.now();
  zombie.signal('SIGCONT');
  await waitFor(() => ffmpegOf(before.epoch) === undefined, {
    timeoutMs: 10_000,
    what: 'the zombie to stop its ffmpeg',
  });
  console.log(
    `zombie's ffmpeg gone ${Date.now() - resumedAt} ms after SIGCONT (SIGSTOP at failover -${Date.now() - Date.parse(failover.at)} ms)`,
  );
  assert.ok(!zombie.hasExited(), 'the worker itself lives on');
  // Stopped either by its own assignment watch or by the supervisor's revoke, queued while it was paused. The
  // worker logs why before it stops ffmpeg, but asynchronously: the line may be read after ffmpeg is gone.
  const stoppedBy = await waitFor(
    () =>
      p.logs.find(
        (l) =>
          l.line.workerId === before.workerId &&
          (l.line.message === 'stream moved on: fencing this job' ||
            l.line.message === 'revoked by the supervisor: stopping the job'),
      ),
    { timeoutMs: 2000, what: 'the zombie to log why it stopped' },
  );
  console.log(`zombie stopped: ${stoppedBy.line.message}`);
  // Not one segment of the old epoch after the new one started, in any later playlist.
  const settled = Date.now();
  await waitFor(() => Date.now() - settled > 2000, {
    intervalMs: 100,
    what: 'time for stale uploads to show',
  });
  const m = await p.media('fo', '360p');
  const firstNew = m?.segments.findIndex((s) => s.uri.startsWith(`${failover.epoch}/`)) ?? -1;
  assert.ok(firstNew >= 0);
  assert.ok(m?.segments.slice(firstNew).every((s) => !s.uri.startsWith(`${before.epoch}/`)));
  // The same in the LL-HLS playlist, parts included: no part of the zombie's epoch after the new one started.
  const ll = readLlPlaylist((await p.fetchText('/ll/fo/360p.m3u8')) ?? '');
  const firstNewLl = ll.entries.findIndex((e) =>
    (e.uri ?? e.parts[0]?.uri ?? '').startsWith(`${failover.epoch}/`),
  );
  assert.ok(firstNewLl >= 0, 'the LL playlist has the new epoch');
  for (const entry of ll.entries.slice(firstNewLl)) {
    for (const uri of [entry.uri, ...entry.parts.map((x) => x.uri)]) {
      if (uri) assert.ok(!uri.startsWith(`${before.epoch}/`), `zombie part ${uri} listed`);
    }
  }
});

test('SIGKILL of the active worker: the standby takes the stream at a new epoch, the playlist carries on', async () => {
  const before = await assignment();
  assert.ok(before);
  const playlistBefore = await waitFor(() => p.media('fo', '360p'), { what: 'the playlist' });
  const victim = p.workers[Number(before.workerId.replace('w', '')) - 1] as Child;
  const eventsBefore = p.events.length;
  const killedAt = Date.now();
  await victim.stop('SIGKILL');
  const failover = await waitFor(() => p.events.slice(eventsBefore).find((e) => e.type === 'failover'), {
    timeoutMs: 10_000,
    what: 'the failover event',
  });
  assert.equal(failover.type, 'failover');
  if (failover.type !== 'failover') return;
  assert.equal(failover.reason, 'worker_lost');
  assert.equal(failover.fromWorker, before.workerId);
  assert.notEqual(failover.toWorker, before.workerId);
  assert.equal(failover.epoch, before.epoch + 1);
  assert.ok(failover.detectionMs < 1000, `detected after ${failover.detectionMs} ms`);
  assert.ok(Date.parse(failover.at) - killedAt < 1500, 'decided within the detection budget');

  const after = await waitFor(
    async () => {
      const m = await p.media('fo', '360p');
      return m?.segments.some((s) => s.uri.startsWith(`${failover.epoch}/`) && s.discontinuity) ? m : null;
    },
    { timeoutMs: 15_000, what: 'segments of the new epoch after a discontinuity' },
  );
  assert.deepEqual(checkMediaPlaylist(after), []);
  assert.deepEqual(checkReload(playlistBefore, after), []);
  const firstNew = after.segments.find((s) => s.uri.startsWith(`${failover.epoch}/`));
  console.log(
    `failover: detection ${failover.detectionMs} ms, switch ${failover.switchMs} ms, first new segment listed ${Date.now() - killedAt} ms after the kill (upper bound), ${firstNew?.uri}`,
  );
});
