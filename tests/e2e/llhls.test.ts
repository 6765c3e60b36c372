// LL-HLS end to end: a 640x360 RTMP publisher -> ingest -> supervisor -> transcoder worker (fMP4 over a unix
// socket, cut into 200 ms parts) -> part events on NATS -> the packager's LL-HLS origin (/ll/), which fetches
// each part from its worker and serves it with blocking reload. Real processes throughout; every playlist is
// read with @live/testing's own line reader (not hls-parser, which writes them).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bytes, decode } from '@live/bus';
import { buckets, originHeartbeat, type PartEvent, partEvent, subjects } from '@live/contracts';
import { type Child, checkLlRules, freePort, type LlPlaylistRead, startPublisher } from '@live/testing';
import { Kvm } from '@nats-io/kv';
import { ownerScore } from '../../services/packager/src/llhls/origin-ring.js';
import { type Platform, startPlatform, waitFor } from './platform.js';

const STREAM = 'lowlat';
let p: Platform;
let publisher: Child | undefined;
const parts: (PartEvent & { receivedAt: number })[] = [];

before(async () => {
  // Replicas answer LL playlists 5 s after they start (production: 15 s), so the first one is the owner.
  // Replicas hear a stream's parts while it had an LL request within 2 s (production: 30 s), so the tests
  // below see a stream unwatched and watched again.
  // A publisher that leaves ends the stream after 1 s (production: 10 s), for the last test.
  p = await startPlatform({
    workers: 2,
    env: { PACKAGER_LL_WARM_MS: '5000', PACKAGER_LL_WATCH_MS: '2000', INGEST_RECONNECT_GRACE_MS: '1000' },
  });
  p.nc.subscribe(subjects.mediaPart(STREAM), {
    callback: (_e, m) => {
      const d = decode(partEvent, m.data);
      if (d.ok) parts.push({ ...d.value, receivedAt: Date.now() });
    },
  });
  publisher = startPublisher({
    url: p.publishUrl(await p.createKey(STREAM)),
    width: 640,
    height: 360,
    fps: 30,
    gopSeconds: 1,
  });
});
after(async () => {
  await publisher?.stop('SIGKILL');
  await p?.stop();
});

const ll = (path: string) => `http://127.0.0.1:${p.originPort}/ll/${STREAM}/${path}`;
const bytesOf = async (url: string) => {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url}: ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
};

async function playlist(
  rendition: string,
  query = '',
): Promise<{ read: LlPlaylistRead; text: string; status: number; origin: string | null }> {
  const response = await fetch(ll(`${rendition}.m3u8${query}`));
  const text = await response.text();
  return {
    status: response.status,
    text,
    // The replica that answered (this one, or the stream's owner it forwarded to).
    origin: response.headers.get('x-ll-origin'),
    read: response.status === 200 ? checkLlRules(text) : (undefined as never),
  };
}

/**
 * A viewer's plain reloads every 500 ms, as a player's would: the origin hears a stream's parts only while
 * it is watched (PACKAGER_LL_WATCH_MS, 2 s here). Starts after a first request (held by the origin until
 * it lists parts again, if the stream was unwatched); returns the stop.
 */
async function keepWatching(): Promise<() => void> {
  await playlist('360p');
  const reload = () =>
    fetch(ll('360p.m3u8'))
      .then((r) => r.arrayBuffer())
      // A reload that fails only means a gap in the watching; the test's own requests report errors.
      .catch(() => undefined);
  const timer = setInterval(() => void reload(), 500);
  return () => clearInterval(timer);
}

/**
 * A replica's own answer for a playlist, as it gives it when it owns the stream (a forwarded request is
 * never forwarded again): held while it resyncs parts, so waited for.
 */
async function ownPlaylist(port: number, rendition: string): Promise<LlPlaylistRead> {
  return waitFor(
    async () => {
      const response = await fetch(`http://127.0.0.1:${port}/ll/${STREAM}/${rendition}.m3u8`, {
        headers: { 'x-ll-forwarded': '1' },
      });
      return response.status === 200 ? checkLlRules(await response.text()) : null;
    },
    { timeoutMs: 10_000, what: `the playlist of the replica on port ${port}` },
  );
}

/** Media sequence numbers by segment URI. */
const msnOf = (r: LlPlaylistRead) => new Map(r.entries.filter((e) => e.uri).map((e) => [e.uri, e.msn]));

/** Asserts that two playlists give every segment they both list the same number; returns how many they share. */
function sameNumbers(a: LlPlaylistRead, b: LlPlaylistRead, what: string): number {
  const fromB = msnOf(b);
  let shared = 0;
  for (const [uri, msn] of msnOf(a)) {
    if (!fromB.has(uri)) continue;
    assert.equal(fromB.get(uri), msn, `${what}: ${uri} numbered alike`);
    shared++;
  }
  return shared;
}

/** The newest part listed: (msn, index) of the last entry that has parts. */
function newestPart(r: LlPlaylistRead): { msn: number; part: number } {
  const entry = r.entries.findLast((e) => e.parts.length > 0);
  assert.ok(entry, 'a playlist with parts');
  return { msn: entry.msn, part: entry.parts.length - 1 };
}

test('the LL-HLS origin lists parts as they are cut; playlists follow the LL-HLS rules, with rendition reports', async () => {
  const master = await waitFor(
    async () => {
      const response = await fetch(ll('master.m3u8'));
      const text = await response.text();
      return response.status === 200 && text.includes('360p.m3u8') && text.includes('240p.m3u8')
        ? text
        : null;
    },
    { timeoutMs: 30_000, what: 'the LL master playlist with both renditions' },
  );
  assert.match(master, /#EXT-X-STREAM-INF:.*CODECS="avc1/);
  // Only stream ids the contracts allow reach the origin's state and storage.
  for (const bad of ['Bad!', '%2e%2e', 'a'.repeat(65)]) {
    assert.equal((await fetch(`http://127.0.0.1:${p.originPort}/ll/${bad}/360p.m3u8`)).status, 404, bad);
  }
  // Wait until each rendition has a few complete segments, then check every rule on both.
  for (const rendition of ['360p', '240p']) {
    const { read } = await waitFor(
      async () => {
        const r = await playlist(rendition);
        return r.status === 200 && r.read.entries.filter((e) => e.uri).length >= 3 ? r : null;
      },
      { timeoutMs: 20_000, what: `3 complete segments in the ${rendition} LL playlist` },
    );
    assert.equal(read.partTarget, 0.2);
    assert.equal(read.targetDuration, 1);
    assert.equal(read.reports.length, 1, 'one rendition report: the other rendition');
    const other = rendition === '360p' ? '240p' : '360p';
    const report = read.reports[0];
    assert.equal(report?.uri, `${other}.m3u8`);
    // The report names a position the other rendition has (reports lag by at most a part or two).
    const otherNow = newestPart((await playlist(other)).read);
    assert.ok(
      report && report.lastMsn <= otherNow.msn && report.lastMsn >= otherNow.msn - 1,
      'report near the other rendition',
    );
    // Segments are 1 s of media: the video timeline keeps real time (a frame rate guessed from a short
    // probe once stretched it by 0.28 %), and no keyframe boundary is skipped (no 2 s segment).
    for (const entry of read.entries.filter((e) => e.uri)) {
      assert.ok(
        Math.abs((entry.duration ?? 0) - 1) < 0.002,
        `segment ${entry.msn} lasts ${entry.duration} s`,
      );
    }
    // Every segment starts with an independent part; parts are about 200 ms.
    for (const entry of read.entries.filter((e) => e.parts.length > 0 && e.uri)) {
      assert.equal(entry.parts[0]?.independent, true, `segment ${entry.msn} starts on an independent part`);
    }
    assert.ok(read.hints[0]?.match(/^\d+\/(360p|240p)\/part_\d+\.m4s$/), `hint ${read.hints[0]}`);
  }
});

test('parts are byte-identical to their segment (from the origin and from storage)', async () => {
  const { read } = await playlist('360p');
  const entry = read.entries.findLast((e) => e.uri && e.parts.length >= 4);
  assert.ok(entry?.uri, 'a complete segment listed with its parts');
  const partBytes = await Promise.all(entry.parts.map((part) => bytesOf(ll(part.uri))));
  const segment = await bytesOf(ll(entry.uri));
  assert.ok(Buffer.concat(partBytes).equals(segment), 'segment = its parts concatenated');
  const stored = await bytesOf(`http://127.0.0.1:${p.originPort}/hls/${STREAM}/${entry.uri}`);
  assert.ok(stored.equals(segment), 'the plain HLS segment in storage is the same bytes');
  const map = read.entries.findLast((e) => e.msn <= entry.msn && e.map)?.map;
  assert.ok(map && (await bytesOf(ll(map))).length > 0, 'init segment served');
});

test('unwatched: no part is announced or heard; the first request subscribes, the worker announces again, and the request is held until a segment is listed with its parts', async () => {
  const metric = async (name: string) => {
    const value = await p.metric(p.packager, name);
    assert.ok(value !== null, `the packager exports ${name}`);
    return value;
  };
  // Part events the origin handled, whatever their result.
  const partsHeard = () => p.metricTotal(p.packager, 'packager_ll_parts_total');
  await waitFor(async () => (await metric('packager_ll_watched_streams')) === 0, {
    timeoutMs: 10_000,
    what: 'the stream to be unwatched (no LL request for 2 s): its part subscription dropped',
  });
  // Nor does the worker announce them any more: the origin's llWatch stopped with its subscription, and a
  // worker publishes a stream's parts only within PARTS_WANTED_MS (3 s) of the last one.
  const announcing = async () => {
    let streams = 0;
    for (const worker of p.workers) streams += await p.metricTotal(worker, 'transcoder_ll_watched_streams');
    return streams;
  };
  await waitFor(async () => (await announcing()) === 0, {
    timeoutMs: 10_000,
    what: 'the worker to stop announcing parts nobody watches',
  });
  const heardBefore = await partsHeard();
  const since = parts.length;
  const segmentsListed = async () => {
    const media = await p.media(STREAM, '360p');
    return (media?.mediaSequenceBase ?? 0) + (media?.segments.length ?? 0);
  };
  const listedBefore = await segmentsListed();
  await waitFor(async () => (await segmentsListed()) >= listedBefore + 2, {
    what: '2 more segments while nobody watches in LL',
  });
  assert.equal(parts.length, since, 'no part announced while nobody watches the stream in LL');
  assert.equal(await partsHeard(), heardBefore, 'no part event reached the origin while unwatched');
  assert.equal(await metric('packager_ll_watched_streams'), 0);
  // The first request: held until this origin lists parts again from a segment start (the next one, once
  // the event completing the segment before it came) and that segment is complete, then answered with a
  // segment of parts behind the live edge and the preload hint.
  const asked = Date.now();
  const { read } = await playlist('360p');
  const heldMs = Date.now() - asked;
  console.log(`the first LL request of an unwatched stream was held ${heldMs} ms`);
  assert.ok(heldMs < 3000, `held ${heldMs} ms: about two segments at most, within the 3 s hold`);
  // The newest parts: of the open segment, or (its segment event came before the next segment's first
  // part) of the complete segment, the hint then standing alone for the next one.
  const newestEntry = read.entries.findLast((e) => e.parts.length > 0);
  assert.ok(newestEntry, 'parts listed');
  const listed = read.entries.flatMap((e) => e.parts);
  const epoch = listed[0]?.uri.split('/')[0];
  const newestNumber = Number(/part_(\d+)/.exec(listed.at(-1)?.uri ?? '')?.[1]);
  assert.equal(read.hints[0], `${epoch}/360p/part_${newestNumber + 1}.m4s`, 'the hint: the next part');
  // A complete segment is listed with all its parts: from an independent first part, as long as it.
  const whole = read.entries.findLast((e) => e.uri && e.parts.length > 0);
  assert.ok(whole, 'a complete segment listed with its parts');
  assert.equal(whole.parts[0]?.independent, true, 'listed from the start of a segment');
  const partsSum = whole.parts.reduce((sum, x) => sum + x.duration, 0);
  assert.ok(
    Math.abs(partsSum - (whole.duration ?? 0)) < 0.01,
    `parts ${partsSum} s, segment ${whole.duration} s`,
  );
  for (const part of newestEntry.parts) {
    const event = parts.find(
      (e) => e.rendition === '360p' && `${e.epoch}/360p/part_${e.number}.m4s` === part.uri,
    );
    assert.ok(event, `${part.uri} was announced`);
    assert.ok(
      (await bytesOf(ll(part.uri))).equals(await bytesOf(event.url)),
      `${part.uri}: the worker's bytes`,
    );
  }
  assert.ok((await partsHeard()) > heardBefore, 'the origin hears the parts from the first request on');
  assert.equal(await metric('packager_ll_watched_streams'), 1, 'watched from the first request on');
  // Watched: the next part is fetched ahead, listed once in memory, and served without another fetch.
  const at = newestPart(read);
  const next = await playlist('360p', `?_HLS_msn=${at.msn}&_HLS_part=${at.part + 2}`);
  assert.equal(next.status, 200);
  const fetchedNow = await metric('packager_ll_fetched_on_request_total');
  const newest = next.read.entries.findLast((e) => e.parts.length > 0)?.parts.at(-1)?.uri ?? '';
  assert.ok((await bytesOf(ll(newest))).length > 0);
  assert.equal(await metric('packager_ll_fetched_on_request_total'), fetchedNow, `${newest} was in memory`);
});

test('blocking reload: a request for the next part is held until it exists, then answered at once', async () => {
  const { read } = await playlist('360p');
  const at = newestPart(read);
  // Ask for the part after the next one: it is at least one part duration away.
  const wanted = { msn: at.msn, part: at.part + 2 };
  const asked = Date.now();
  const response = await playlist('360p', `?_HLS_msn=${wanted.msn}&_HLS_part=${wanted.part}`);
  const answered = Date.now();
  assert.equal(response.status, 200);
  const entry = response.read.entries.find((e) => e.msn === wanted.msn);
  // Part `wanted.part` of `msn`, or (when that segment had fewer parts) a part of the next segment.
  const has =
    (entry && entry.parts.length > wanted.part) ||
    response.read.entries.some((e) => e.msn > wanted.msn && e.parts.length > 0);
  assert.ok(has, 'the answer holds the requested part');
  assert.ok(answered - asked >= 150, `held ${answered - asked} ms (the part did not exist yet)`);
  // Answered within one part duration of the part's announcement (the origin fetched it from the worker).
  const epoch = Number(response.read.hints[0]?.split('/')[0]);
  const newestNumber = Number(/part_(\d+)/.exec(response.read.hints[0] ?? '')?.[1]) - 1;
  const event = parts.find((x) => x.epoch === epoch && x.rendition === '360p' && x.number === newestNumber);
  assert.ok(event, 'the part event of the newest listed part');
  assert.ok(
    answered - event.receivedAt < 200,
    `answered ${answered - event.receivedAt} ms after the part event`,
  );

  // Too far ahead: refused at once.
  const ahead = await playlist('360p', `?_HLS_msn=${at.msn + 5}`);
  assert.equal(ahead.status, 400);
  assert.match(ahead.text, /more than 2 segments ahead/);
  // 40 parts into the segment after the newest one (a part of the newest segment could be answered at once
  // if that segment completed meanwhile: M3 reads it as part 0 of the next).
  const now = newestPart((await playlist('360p')).read);
  const badPart = await playlist('360p', `?_HLS_msn=${now.msn + 1}&_HLS_part=40`);
  assert.equal(badPart.status, 400);
  assert.equal((await playlist('360p', '?_HLS_part=1')).status, 400);

  // The preload hint: requested before it exists, answered with the part once it is cut. The origin hints a
  // part until it has fetched it from the worker, so a hint can name a part the worker has just cut: such a
  // try proves nothing about holding, and the next hint is tried (each is complete all the same).
  let held = false;
  for (let tries = 0; tries < 5 && !held; tries++) {
    const hinted = await playlist('360p');
    const hint = hinted.read.hints[0] ?? '';
    const hintAsked = Date.now();
    const hintBytes = await bytesOf(ll(hint));
    const number = Number(/part_(\d+)/.exec(hint)?.[1]);
    const hintEvent = await waitFor(
      () =>
        parts.find((x) => x.rendition === '360p' && x.number === number && hint.startsWith(`${x.epoch}/`)),
      { what: 'the hinted part to be announced' },
    );
    assert.equal(hintBytes.length, hintEvent.bytes, 'the hinted part, complete');
    held = hintAsked < hintEvent.completedAt;
  }
  assert.ok(held, 'a hint requested before its part was cut was held and answered with the part');
});

test('two origin replicas: playlists from the owner of the stream (one numbering), parts and segments from either', async () => {
  const secondPort = await freePort();
  const secondReplica = await p.startPackager(secondPort);
  const second = (path: string) => `http://127.0.0.1:${secondPort}/ll/${STREAM}/${path}`;
  try {
    // A part announced before the new replica heard anything of the stream (it hears a stream's parts
    // from its first LL request on): fetched through the owner, which listed it.
    const listed = (await playlist('360p')).read.entries.at(-1)?.parts.at(-1)?.uri;
    assert.ok(listed, 'the owner lists parts');
    const forwardedBefore = (await p.metric(secondReplica, 'packager_ll_forwarded_total')) ?? 0;
    assert.ok(
      (await bytesOf(second(listed))).equals(await bytesOf(ll(listed))),
      `${listed} through the owner`,
    );
    assert.equal(await p.metric(secondReplica, 'packager_ll_forwarded_total'), forwardedBefore + 1);
    // The new replica is not warm yet: it forwards this stream's playlists to the first one, the owner.
    const at = newestPart((await playlist('360p')).read);
    const query = `?_HLS_msn=${at.msn}&_HLS_part=${at.part + 2}`;
    const [a, b] = await Promise.all([
      playlist('360p', query),
      waitFor(
        async () => {
          const response = await fetch(second(`360p.m3u8${query}`));
          return response.status === 200 ? response.text() : null;
        },
        { timeoutMs: 10_000, what: 'the second replica to answer the same blocking request' },
      ),
    ]);
    assert.equal(a.status, 200);
    // One numbering: every segment has the same media sequence number in both answers.
    assert.ok(sameNumbers(a.read, checkLlRules(b), 'forwarded') >= 3);
    // And the new replica's own numbering (what players would see from it if the owner went away) is the
    // owner's: it started numbering mid-stream, and follows the numbering the owner shares.
    const own = await ownPlaylist(secondPort, '360p');
    assert.ok(sameNumbers(await ownPlaylist(p.originPort, '360p'), own, 'its own') >= 3);
    assert.ok(
      ((await p.metric(secondReplica, 'packager_ll_forwarded_total')) ?? 0) >= 1,
      'forwarded to the owner',
    );
    // Parts and segments: each replica serves its own copies, the same bytes. (The stream may have been
    // unwatched while the replica started, and then lists parts again from the next segment start.)
    const entry = await waitFor(
      async () => (await playlist('360p')).read.entries.findLast((e) => e.uri && e.parts.length > 0),
      { what: 'a complete segment listed with its parts' },
    );
    assert.ok(entry.uri);
    const part = entry.parts.at(-1)?.uri ?? '';
    await waitFor(async () => (await fetch(second(part))).status === 200, {
      what: 'the part on the second replica',
    });
    assert.ok((await bytesOf(ll(part))).equals(await bytesOf(second(part))), `${part}: same bytes on both`);
    assert.ok((await bytesOf(ll(entry.uri))).equals(await bytesOf(second(entry.uri))), 'same segment bytes');
  } finally {
    // Stopped before it is warm: the stream stays with the first replica for the tests below.
    await secondReplica.stop('SIGKILL');
  }
});

test('a rolling update: a new replica warms up and takes the stream, then goes away; players see the same numbers throughout', async (t) => {
  // The first replica's id, from its heartbeat; the new one gets an id that outranks it for this stream.
  let firstId: string | undefined;
  const heartbeats = p.nc.subscribe(subjects.allOriginHealth, {
    callback: (_e, m) => {
      const d = decode(originHeartbeat, m.data);
      if (d.ok) firstId ??= d.value.originId;
    },
  });
  const heartbeat = await waitFor(() => firstId, { what: "the first replica's heartbeat" });
  heartbeats.unsubscribe();
  let newId = '';
  for (let i = 0; !newId; i++) {
    if (ownerScore(STREAM, `rolling-${i}`) > ownerScore(STREAM, heartbeat)) newId = `rolling-${i}`;
  }
  const stopWatching = await keepWatching();
  t.after(stopWatching);
  /** A player's reloads (through the first replica) until `origin` answers: its last answer before, and that one. */
  const untilAnswerFrom = async (origin: string, what: string) => {
    let last: LlPlaylistRead | undefined;
    const next = await waitFor(
      async () => {
        const r = await playlist('360p');
        if (r.status !== 200) return null;
        if (r.origin === origin) return r.read;
        last = r.read;
        return null;
      },
      { timeoutMs: 20_000, what },
    );
    assert.ok(last, `an answer before ${what}`);
    return { last, next };
  };
  assert.equal((await playlist('360p')).origin, heartbeat, 'the first replica answers');
  const newReplica = await p.startPackager(await freePort(), { PACKAGER_ORIGIN_ID: newId });
  t.after(() => newReplica.stop('SIGKILL'));
  // Warm (5 s here), the new replica owns the stream: the first one forwards its playlist requests there.
  // A player's last playlist before and first after: the same segments have the same numbers.
  const taken = await untilAnswerFrom(newId, 'the new replica to own the stream');
  assert.ok(sameNumbers(taken.last, taken.next, 'new owner') >= 3, 'segments in both answers');
  // It goes away (SIGKILL, as a lost node): the first replica answers again (at once, as the owner cannot
  // be reached; 3 s later as the owner again).
  const lastFromNew = await playlist('360p');
  assert.equal(lastFromNew.origin, newId);
  await newReplica.stop('SIGKILL');
  const back = await waitFor(
    async () => {
      const r = await playlist('360p');
      return r.status === 200 && r.origin === heartbeat ? r.read : null;
    },
    { timeoutMs: 20_000, what: 'the first replica to answer again' },
  );
  assert.ok(sameNumbers(lastFromNew.read, back, 'owner again') >= 3, 'segments in both answers');
});

test('failover mid-segment: the old segment ends, a discontinuity and the new epoch follow, no zombie part; a replica that was not watched numbers the new epoch alike', async (t) => {
  const kv = await new Kvm(p.nc).open(buckets.assignments);
  const before = (await kv.get(STREAM))?.json<{ workerId: string; epoch: number }>();
  assert.ok(before);
  // Watched in LL (an unwatched stream's open segment is not listed with parts, so nothing to truncate).
  const stopWatching = await keepWatching();
  // A second replica, not watched through: it hears no parts, so it never lists the truncated segment, and
  // would number the new epoch one lower than the owner without the shared numbering.
  const secondPort = await freePort();
  const secondReplica = await p.startPackager(secondPort);
  t.after(() => secondReplica.stop('SIGKILL'));
  // Kill the worker mid-segment: after the second part of a segment.
  await waitFor(() => parts.at(-1)?.epoch === before.epoch && parts.at(-1)?.index === 1, {
    timeoutMs: 5000,
    what: 'a segment with two parts',
  });
  const victim = p.workers[Number(before.workerId.replace('w', '')) - 1] as Child;
  await victim.stop('SIGKILL');
  const { read } = await waitFor(
    async () => {
      const r = await playlist('360p');
      const switched = r.status === 200 && r.read.entries.findIndex((e) => e.discontinuity);
      return switched !== false && switched >= 0 && r.read.entries.slice(switched).some((e) => e.uri)
        ? r
        : null;
    },
    { timeoutMs: 15_000, what: 'a discontinuity and a complete segment of the new epoch' },
  );
  stopWatching();
  const index = read.entries.findIndex((e) => e.discontinuity);
  const last = read.entries[index - 1];
  const first = read.entries[index];
  assert.ok(last?.uri?.startsWith(`${before.epoch}/`), 'the old epoch segment is listed before the switch');
  // It ended where the killed worker stopped: mid-segment, with the parts the origin had fetched (a part
  // announced just before the kill may be gone with its worker; the origin then lists the segment without it).
  assert.ok(
    (last?.duration ?? 1) > 0.1 && (last?.duration ?? 1) < 0.9,
    `old segment ended after ${last?.duration} s`,
  );
  assert.ok(
    first?.uri?.startsWith(`${before.epoch + 1}/`) || first?.parts[0]?.uri.startsWith(`${before.epoch + 1}/`),
  );
  assert.ok(first?.map?.startsWith(`${before.epoch + 1}/`), 'a new EXT-X-MAP with the new epoch');
  // After the switch, nothing of the old epoch.
  for (const entry of read.entries.slice(index)) {
    for (const uri of [entry.uri, ...entry.parts.map((x) => x.uri)]) {
      if (uri) assert.ok(!uri.startsWith(`${before.epoch}/`), `${uri} after the switch`);
    }
  }
  // The truncated old segment is still served as its parts (it is within the last 3 target durations,
  // where parts must be listed).
  assert.ok(last?.uri && last.parts.length > 0, 'the truncated segment is listed with its parts');
  const segment = await bytesOf(ll(last.uri));
  const partBytes = await Promise.all(last.parts.map((x) => bytesOf(ll(x.uri))));
  assert.ok(Buffer.concat(partBytes).equals(segment), 'the truncated segment = its parts');
  // The second replica's own playlist numbers the new epoch's segments as the owner does.
  const own = await waitFor(
    async () => {
      const r = await ownPlaylist(secondPort, '360p');
      return r.entries.filter((e) => e.uri?.startsWith(`${before.epoch + 1}/`)).length >= 2 ? r : null;
    },
    { timeoutMs: 10_000, what: 'two segments of the new epoch on the second replica' },
  );
  assert.ok(!msnOf(own).has(last.uri), 'the second replica never had the truncated segment');
  // Both replicas' own answers: by now the second one may be warm and own the stream (5 s here).
  assert.ok(sameNumbers(await ownPlaylist(p.originPort, '360p'), own, 'after the failover') >= 2);
});

test('planned move (make-before-break) with parts: the playlist follows part by part, no hold longer than 1 s', async () => {
  const kv = await new Kvm(p.nc).open(buckets.assignments);
  const before = (await kv.get(STREAM))?.json<{ epoch: number }>();
  assert.ok(before);
  // A player's loop: ask for the part after the newest one (blocking), again and again, across the move.
  // Until it starts, a viewer keeps the stream watched (starting a worker takes longer than the 2 s watch).
  const stopWatching = await keepWatching();
  const holds: number[] = [];
  // The failover above took the standby; a new worker is the target (accepted once the supervisor sees it).
  p.workers.push(await p.startWorker());
  await waitFor(
    async () => {
      const reply = await p.nc.request(subjects.ctl.streamMove, bytes(JSON.stringify({ streamId: STREAM })), {
        timeout: 10_000,
      });
      return !reply.headers?.get('Nats-Service-Error');
    },
    { timeoutMs: 10_000, what: 'the move to be accepted' },
  );
  let at = newestPart((await playlist('360p')).read);
  stopWatching();
  let switched: LlPlaylistRead | undefined;
  const deadline = Date.now() + 20_000;
  while (!switched && Date.now() < deadline) {
    const asked = Date.now();
    const next = await playlist('360p', `?_HLS_msn=${at.msn}&_HLS_part=${at.part + 1}`);
    assert.equal(next.status, 200, next.text);
    holds.push(Date.now() - asked);
    at = newestPart(next.read);
    const index = next.read.entries.findIndex((e) => e.discontinuity);
    if (index >= 0 && next.read.entries[index]?.map?.startsWith(`${before.epoch + 1}/`)) switched = next.read;
  }
  assert.ok(switched, 'the LL playlist switched to the new epoch');
  const longest = Math.max(...holds);
  console.log(`planned move with parts: ${holds.length} blocking reloads, longest hold ${longest} ms`);
  assert.ok(longest < 1000, `a blocking reload was held ${longest} ms during the move`);
});

test('a stream that ends: ENDLIST, and the origin stops hearing its parts although players keep asking', async () => {
  const stopWatching = await keepWatching();
  try {
    assert.equal(await p.metric(p.packager, 'packager_ll_watched_streams'), 1);
    await publisher?.stop('SIGKILL');
    publisher = undefined;
    await waitFor(
      async () => {
        const r = await playlist('360p');
        return r.status === 200 && r.read.endlist;
      },
      { timeoutMs: 20_000, what: 'ENDLIST in the LL playlist' },
    );
    // Players polling until they see ENDLIST keep the stream watched, but nothing of it is listed any more.
    await waitFor(async () => (await p.metric(p.packager, 'packager_ll_watched_streams')) === 0, {
      timeoutMs: 3000,
      what: 'the part subscription dropped at the end',
    });
    await playlist('360p');
    assert.equal(await p.metric(p.packager, 'packager_ll_watched_streams'), 0, 'not subscribed again');
  } finally {
    stopWatching();
  }
});
