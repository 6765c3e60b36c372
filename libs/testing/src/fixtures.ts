// Valid contract values for tests that need an event without a real ingest behind it.
import type { LifecycleEventOf, SourceInfo } from '@live/contracts';

/** A 640x360 H.264 source as an ingest announces it (`ingestId` in its pull URL too). */
export function testSource(ingestId = 'i1'): SourceInfo {
  return {
    url: `rtmp://${ingestId}:1935/src/s?token=t`,
    video: {
      codec: 'h264',
      profile: 'High',
      level: 31,
      width: 640,
      height: 360,
      fps: 30,
      chromaFormat: 1,
      bitDepth: 8,
    },
    audio: null,
    announcedKbps: 800,
    ingestId,
  };
}

/** A `started` event of `streamId` from session `sessionId` on ingest `ingestId`. */
export function startedEvent(
  id: string,
  streamId: string,
  { sessionId = 's1', ingestId = 'i1' }: { sessionId?: string; ingestId?: string } = {},
): LifecycleEventOf<'started'> {
  return {
    id,
    type: 'started',
    streamId,
    sessionId,
    at: new Date().toISOString(),
    acceptedAt: Date.now(),
    source: testSource(ingestId),
  };
}
