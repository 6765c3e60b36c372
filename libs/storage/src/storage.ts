// One storage interface for media and playlists, with two implementations: the local filesystem (the
// embedded default, served by the packager's origin) and Google Cloud Storage (production, behind a CDN).
export interface PutOptions {
  contentType: string;
  cacheControl: string;
}

export interface Storage {
  readonly kind: 'local' | 'gcs';
  put(key: string, data: Buffer, options: PutOptions): Promise<void>;
  /** The object's bytes, or null if there is none. */
  get(key: string): Promise<Buffer | null>;
  /** Deletes the object; a missing object is not an error. */
  delete(key: string): Promise<void>;
}

/** Object keys: <streamId>/... with no empty, "." or ".." segments (they end up in paths and URLs). */
const KEY = /^[a-z0-9][a-z0-9_-]*(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$/;

export class InvalidKeyError extends Error {
  constructor(key: string) {
    super(`invalid storage key ${JSON.stringify(key)}`);
    this.name = 'InvalidKeyError';
  }
}

export function checkKey(key: string): string {
  if (!KEY.test(key) || key.split('/').some((part) => part === '..' || part === '.'))
    throw new InvalidKeyError(key);
  return key;
}

/** Cache lifetimes: live playlists change every segment; segments never change once written. */
export const cacheControl = {
  playlist: 'public, max-age=1, stale-while-revalidate=1',
  segment: 'public, max-age=31536000, immutable',
} as const;

export function contentTypeFor(key: string): string {
  if (key.endsWith('.m3u8')) return 'application/vnd.apple.mpegurl';
  if (key.endsWith('.m4s')) return 'video/iso.segment';
  if (key.endsWith('.mp4')) return 'video/mp4';
  return 'application/octet-stream';
}

export function cacheControlFor(key: string): string {
  return key.endsWith('.m3u8') ? cacheControl.playlist : cacheControl.segment;
}
