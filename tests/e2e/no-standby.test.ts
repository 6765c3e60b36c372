// The warm standby pool: with SUPERVISOR_STANDBY_SLOTS=1 and a single worker running the only stream, the
// supervisor raises `standby_short` (live.alert.standby and a metric). When that worker dies there is nowhere
// to fail over to; the stream recovers as soon as a worker joins, and the alert clears once a standby exists.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode } from '@live/bus';
import { type StandbyAlert, standbyAlert, subjects } from '@live/contracts';
import { type Child, startPublisher } from '@live/testing';
import { type Platform, startPlatform, waitFor } from './platform.js';
import { checkMediaPlaylist } from './rfc8216.js';

let p: Platform;
let publisher: Child;
const alerts: StandbyAlert[] = [];
before(async () => {
  p = await startPlatform({ workers: 1, env: { SUPERVISOR_STANDBY_SLOTS: '1' } });
  p.nc.subscribe(subjects.standbyAlert, {
    callback: (_e, m) => {
      const d = decode(standbyAlert, m.data);
      if (d.ok) alerts.push(d.value);
    },
  });
  publisher = startPublisher({
    url: p.publishUrl(await p.createKey('solo')),
    width: 640,
    height: 360,
    gopSeconds: 1,
  });
  await waitFor(async () => ((await p.media('solo', '360p'))?.segments.length ?? 0) >= 2, {
    timeoutMs: 30_000,
    what: 'the stream to be live',
  });
});
after(async () => {
  await publisher?.stop('SIGKILL');
  await p?.stop();
});

const supervisorMetric = (name: string) => p.metric(p.supervisor, name);

test('no standby: alert and metric; the stream waits for a worker, then recovers; the alert clears', async () => {
  const short = await waitFor(() => alerts.find((a) => a.type === 'standby_short'), {
    what: 'a standby_short alert',
  });
  assert.equal(short.freeSlots, 0);
  assert.equal(short.required, 1);
  assert.equal(await supervisorMetric('supervisor_standby_free_slots'), 0);
  // Logged with the alert, asynchronously: the line may be read after the alert and the metric.
  await waitFor(
    () =>
      p.logs.some(
        (l) => l.service === 'supervisor' && l.line.message?.toString().includes('standby pool short'),
      ),
    { timeoutMs: 2000, what: "the supervisor's standby pool short log line" },
  );

  // The only worker dies: nowhere to fail over to.
  const eventsBefore = p.events.length;
  await (p.workers[0] as Child).stop('SIGKILL');
  await waitFor(
    () => p.logs.some((l) => l.line.message?.toString().startsWith('failover failed: retrying')),
    { what: 'the failover to fail for want of a worker' },
  );
  assert.ok(!p.events.slice(eventsBefore).some((e) => e.type === 'failover'));
  // One worker joins: the stream moves there at once.
  p.workers.push(await p.startWorker());
  const failover = await waitFor(() => p.events.slice(eventsBefore).find((e) => e.type === 'failover'), {
    timeoutMs: 10_000,
    what: 'the failover once a worker joined',
  });
  assert.ok(failover.type === 'failover' && failover.toWorker === 'w2');
  const m = await waitFor(
    async () => {
      const media = await p.media('solo', '360p');
      return media?.segments.some((s) => s.uri.startsWith(`${failover.epoch}/`)) ? media : null;
    },
    { timeoutMs: 15_000, what: 'segments of the new epoch' },
  );
  assert.deepEqual(checkMediaPlaylist(m), []);
  // Still short (the new worker is busy); a second one restores the standby.
  assert.equal(alerts.at(-1)?.type, 'standby_short');
  const alertsBefore = alerts.length; // only what the second worker brings counts below
  p.workers.push(await p.startWorker());
  const restored = await waitFor(
    () => alerts.slice(alertsBefore).find((a) => a.type === 'standby_restored'),
    { what: 'standby_restored' },
  );
  assert.equal(restored.freeSlots, 1);
  // The gauge follows the same heartbeat: fails here (times out) unless it comes to read 1.
  await waitFor(async () => (await supervisorMetric('supervisor_standby_free_slots')) === 1, {
    what: 'supervisor_standby_free_slots to read 1',
  });
});
