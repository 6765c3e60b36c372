// A room's writer against a real nats-server: the writes that queue while one is in flight are stored
// together (a group commit), every event still gets its own seq, in order, with no gap, also when two
// pods write to the room at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connectBus, decode, type NatsConnection, provision } from '@live/bus';
import { CHAT_EVENTS_PER_WRITE, chatStoredEvents, streams, subjects } from '@live/contracts';
import { type NatsServer, startNatsServer, waitFor } from '@live/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { type RetainedEvent, Room } from '../src/rooms/room.js';

const logger = pino({ level: 'silent' });
let nats: NatsServer;
let nc: NatsConnection;

before(async () => {
  nats = await startNatsServer();
  nc = await connectBus({ servers: [nats.url], name: 'room-writes-test', logger });
  await provision(nc, logger);
});
after(async () => {
  await nc?.close();
  await nats?.dispose();
});

/** A room as a pod holds it, with one member that records every event it is sent, in order. */
async function openRoom(id: string) {
  const room = new Room(id, nc, await jetstreamManager(nc), logger, {
    retained: 1000,
    batchMs: 0,
    onDelivered: () => {},
  });
  const seen: number[] = [];
  room.members.add({
    userId: 'reader',
    lastSent: 0,
    deliver: (event: RetainedEvent) => seen.push(event.seq),
    deliverFrame(frame, lastSeq) {
      const json = JSON.parse(frame.text.toString()) as { seq: number } | { seq: number }[];
      for (const e of Array.isArray(json) ? json : [json]) seen.push(e.seq);
      this.lastSent = lastSeq;
    },
  });
  await room.start();
  await room.ready;
  return { room, seen };
}

const message = (author: string, text: string) => (seq: number, ts: number) => ({
  type: 'msg' as const,
  seq,
  ts,
  user: { id: author, name: author, role: 'viewer' as const },
  text,
});

/** The messages stored on the room's subject, each as the list of its events' seqs. */
async function stored(room: string): Promise<number[][]> {
  const jsm = await jetstreamManager(nc);
  const subject = subjects.chatRoom(room);
  const out: number[][] = [];
  const info = await jsm.streams.info(streams.chat);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(streams.chat, { seq }).catch(() => null);
    if (m?.subject !== subject) continue;
    const decoded = decode(chatStoredEvents, m.data);
    assert.ok(decoded.ok, `stored message ${seq} is valid`);
    out.push(decoded.value.map((e) => e.seq));
  }
  return out;
}

test('writes queued behind one in flight are stored as one message; each gets its own seq, in order', async () => {
  const { room, seen } = await openRoom('group');
  // 20 writes in one turn of the event loop: the first goes alone, the other 19 wait for its ack.
  const seqs = await Promise.all(Array.from({ length: 20 }, (_, i) => room.write(message('a', `m${i}`))));
  assert.deepEqual(
    seqs,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.deepEqual(await stored('group'), [[1], Array.from({ length: 19 }, (_, i) => i + 2)]);
  await waitFor(() => seen.length === 20, { what: 'every event at the member' });
  assert.deepEqual(seen, seqs);
  // The texts are in the order written.
  assert.deepEqual(
    room.history(50).events.map((e) => (e.event.type === 'msg' ? e.event.text : '')),
    Array.from({ length: 20 }, (_, i) => `m${i}`),
  );
  // A pod joining later reads the grouped message back as its events, and numbers after them.
  const { room: late, seen: lateSeen } = await openRoom('group');
  assert.equal(late.newestSeq, 20);
  assert.equal(await late.write(message('b', 'after')), 21);
  await waitFor(() => seen.length === 21, { what: 'the late pod’s event at the first pod' });
  assert.deepEqual(lateSeen.at(-1), 21);
  await late.stop();
  await room.stop();
});

test(`a group holds at most ${CHAT_EVENTS_PER_WRITE} events`, async () => {
  const { room } = await openRoom('big');
  const count = CHAT_EVENTS_PER_WRITE + 31;
  await Promise.all(Array.from({ length: count }, (_, i) => room.write(message('a', `m${i}`))));
  assert.deepEqual(
    (await stored('big')).map((group) => group.length),
    [1, CHAT_EVENTS_PER_WRITE, count - 1 - CHAT_EVENTS_PER_WRITE],
  );
  await room.stop();
});

test('two pods writing groups at once: every event gets a unique seq, 1..n with no gap, the same order on both', async () => {
  const a = await openRoom('race');
  const b = await openRoom('race');
  const [fromA, fromB] = await Promise.all([
    Promise.all(Array.from({ length: 30 }, (_, i) => a.room.write(message('a', `a${i}`)))),
    Promise.all(Array.from({ length: 30 }, (_, i) => b.room.write(message('b', `b${i}`)))),
  ]);
  const all = [...fromA, ...fromB].sort((x, y) => x - y);
  assert.deepEqual(
    all,
    Array.from({ length: 60 }, (_, i) => i + 1),
  );
  // Each pod's own messages keep their order.
  assert.deepEqual(
    fromA,
    [...fromA].sort((x, y) => x - y),
  );
  assert.deepEqual(
    fromB,
    [...fromB].sort((x, y) => x - y),
  );
  await waitFor(() => a.seen.length === 60 && b.seen.length === 60, { what: 'all 60 events on both pods' });
  assert.deepEqual(a.seen, all);
  assert.deepEqual(b.seen, all);
  for (const [pod, own, prefix] of [
    [a.room, fromA, 'a'],
    [b.room, fromB, 'b'],
  ] as const) {
    own.forEach((seq, i) => {
      const event = pod.find(seq)?.event;
      assert.equal(event?.type === 'msg' && event.text, `${prefix}${i}`);
    });
  }
  await a.room.stop();
  await b.room.stop();
});

test('the stored form: one event, or an array of consecutive ones; anything else is refused with a reason', () => {
  const e = (seq: number) => message('a', 'x')(seq, 1);
  assert.deepEqual(decode(chatStoredEvents, Buffer.from(JSON.stringify(e(3)))), { ok: true, value: [e(3)] });
  assert.deepEqual(decode(chatStoredEvents, Buffer.from(JSON.stringify([e(3), e(4)]))), {
    ok: true,
    value: [e(3), e(4)],
  });
  for (const bad of [
    [],
    [e(3), e(5)],
    Array.from({ length: CHAT_EVENTS_PER_WRITE + 1 }, (_, i) => e(i + 1)),
  ]) {
    const decoded = decode(chatStoredEvents, Buffer.from(JSON.stringify(bad)));
    assert.equal(decoded.ok, false, `${bad.length} events refused`);
  }
  const gap = decode(chatStoredEvents, Buffer.from(JSON.stringify([e(3), e(5)])));
  assert.ok(!gap.ok && /consecutive/.test(gap.reason), 'the reason names the rule');
});
