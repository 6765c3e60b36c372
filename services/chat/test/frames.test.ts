import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '@live/testing';
import pino from 'pino';
import { batchFrame, outgoing, type RetainedEvent, Room } from '../src/rooms/room.js';

test('outgoing frames: RFC 6455 unmasked text headers for 7-bit, 16-bit and 64-bit lengths', () => {
  for (const [length, header] of [
    [125, [0x81, 125]],
    [126, [0x81, 126, 0, 126]],
    [65535, [0x81, 126, 0xff, 0xff]],
    [65536, [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]],
  ] as const) {
    const { wire, text } = outgoing(Buffer.alloc(length, 'a'));
    assert.deepEqual([...wire.subarray(0, header.length)], header, `length ${length}`);
    assert.equal(wire.length, header.length + length);
    assert.ok(wire.subarray(header.length).equals(text));
  }
});

test('a batch is a JSON array of the stored frames, a single event stays itself', () => {
  const e = (seq: number) =>
    ({ seq, frame: Buffer.from(JSON.stringify({ type: 'msg', seq })) }) as RetainedEvent;
  assert.equal(batchFrame([e(1)]).toString(), '{"type":"msg","seq":1}');
  assert.deepEqual(JSON.parse(batchFrame([e(1), e(2), e(3)]).toString()), [
    { type: 'msg', seq: 1 },
    { type: 'msg', seq: 2 },
    { type: 'msg', seq: 3 },
  ]);
});

/** The room's delivery logic alone (no NATS): `receive(seq)` hands it an event as its consumer would. */
function deliveryOnly(id: string) {
  const room = new Room(id, undefined as never, undefined as never, pino({ level: 'silent' }), {
    retained: 100,
    batchMs: 100,
    onDelivered: () => {},
  });
  const receive = (seq: number) =>
    (room as unknown as { receive(data: Uint8Array, streamSeq: number): void }).receive(
      Buffer.from(
        JSON.stringify({
          type: 'msg',
          seq,
          ts: Date.now(),
          user: { id: 'u', name: 'U', role: 'viewer' },
          text: `m${seq}`,
        }),
      ),
      seq,
    );
  return { room, receive };
}

test('events read together go out as one frame, also when a slow fan-out has used up the throttle period', async () => {
  const { room, receive } = deliveryOnly('fanout');
  const frames: number[][] = [];
  room.members.add({
    userId: 'slow',
    lastSent: 0,
    deliver: () => assert.fail('events go out as frames'),
    deliverFrame(frame, lastSeq) {
      const json = JSON.parse(frame.text.toString()) as { seq: number } | { seq: number }[];
      frames.push((Array.isArray(json) ? json : [json]).map((e) => e.seq));
      this.lastSent = lastSeq;
      // A fan-out to thousands of members: the event loop is busy longer than the throttle period.
      const until = Date.now() + 150;
      while (Date.now() < until);
    },
  });
  receive(1);
  await waitFor(() => frames.length === 1, { what: 'the first frame' });
  // What queued up during that fan-out is read in one go.
  receive(2);
  receive(3);
  receive(4);
  await waitFor(() => frames.length === 2, { what: 'the second frame' });
  assert.deepEqual(frames, [[1], [2, 3, 4]]);
  await room.stop();
});

test('a sweep over many members lets the event loop run between chunks: an event arriving mid-sweep reaches the members not yet visited in the same frame', async () => {
  const { room, receive } = deliveryOnly('sweep');
  // More members than one chunk, each write slow enough that a sweep takes ~200 ms.
  const members = Array.from({ length: 2000 }, (_, i) => {
    const frames: number[][] = [];
    const member = {
      userId: `m${i}`,
      lastSent: 0,
      frames,
      deliver: () => assert.fail('events go out as frames'),
      deliverFrame(frame: { text: Buffer }, lastSeq: number) {
        const json = JSON.parse(frame.text.toString()) as { seq: number } | { seq: number }[];
        frames.push((Array.isArray(json) ? json : [json]).map((e) => e.seq));
        member.lastSent = lastSeq;
        const until = performance.now() + 0.1;
        while (performance.now() < until);
      },
    };
    room.members.add(member);
    return member;
  });
  const first = members[0] as (typeof members)[number];
  const last = members.at(-1) as (typeof members)[number];
  receive(1);
  // waitFor's own timer only runs between chunks: the sweep has begun and is not done.
  await waitFor(() => first.frames.length === 1, { intervalMs: 1, what: 'the first member to get event 1' });
  assert.equal(last.frames.length, 0, 'the sweep is still on its way when the event loop runs');
  receive(2);
  await waitFor(() => members.every((m) => m.lastSent === 2), { what: 'every member to get event 2' });
  for (const m of members)
    assert.deepEqual(m.frames.flat(), [1, 2], `${m.userId} gets each event once, in order`);
  assert.deepEqual(first.frames, [[1], [2]]);
  assert.deepEqual(last.frames, [[1, 2]], 'the last member gets both events in one frame');
  await room.stop();
});
