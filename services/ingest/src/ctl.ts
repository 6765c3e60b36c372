// Operator endpoints of the ingest service (NATS request-reply, listed by `nats micro info live-ingest`).
import {
  createKeyReply,
  createKeyRequest,
  revokeKeyReply,
  revokeKeyRequest,
  subjects,
} from '@live/contracts';
import { endpoint } from '@live/runtime';
import type { KeyStore } from './keys/key-store.js';

export function ingestEndpoints(keys: KeyStore) {
  return [
    endpoint({
      name: 'keys-create',
      subject: subjects.ctl.keysCreate,
      description: 'create a stream key for a stream id; the plain key is in the reply only',
      request: createKeyRequest,
      reply: createKeyReply,
      handler: async ({ streamId, label }) => {
        const { streamKey, keyId } = await keys.create(streamId, label);
        return { streamId, streamKey, keyId };
      },
    }),
    endpoint({
      name: 'keys-revoke',
      subject: subjects.ctl.keysRevoke,
      description: 'revoke keys by streamId, streamKey or keyId; live publishers using them are disconnected',
      request: revokeKeyRequest,
      reply: revokeKeyReply,
      // This replica disconnects its own publishers here; the others do when their KV watch sees the delete.
      handler: (match) => keys.revoke(match),
    }),
  ];
}
