import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchFrame, outgoing, type RetainedEvent } from '../src/rooms/room.js';

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
