// Google Cloud Storage through the official client. Credentials come the standard way (Application
// Default Credentials; Workload Identity on GKE), never from a key file in the repo. Every write of this
// platform is idempotent (same key, same bytes; playlists are last-writer-wins), so the client may retry
// any request; large objects use resumable uploads.
import { Storage as GcsClient, IdempotencyStrategy } from '@google-cloud/storage';
import { checkKey, type PutOptions, type Storage } from './storage.js';

export interface GcsOptions {
  bucket: string;
  /** Prefix inside the bucket, e.g. "live/" (empty for the bucket root). */
  prefix?: string;
  /** Objects at least this large use a resumable upload. */
  resumableThresholdBytes?: number;
  /** Resumable uploads in chunks of this size (a multiple of 256 KiB); default: one streamed request. */
  chunkSizeBytes?: number;
  /** For tests and emulators (STORAGE_EMULATOR_HOST works too). */
  apiEndpoint?: string;
  projectId?: string;
}

export class GcsStorage implements Storage {
  readonly kind = 'gcs' as const;
  private readonly bucket;
  private readonly prefix: string;
  private readonly resumableThreshold: number;
  private readonly chunkSize: number | undefined;

  constructor(options: GcsOptions) {
    const client = new GcsClient({
      ...(options.apiEndpoint ? { apiEndpoint: options.apiEndpoint } : {}),
      ...(options.projectId ? { projectId: options.projectId } : {}),
      retryOptions: {
        autoRetry: true,
        // Media must reach storage within the failover budget or not at all; a few quick tries.
        maxRetries: 4,
        retryDelayMultiplier: 2,
        totalTimeout: 20,
        maxRetryDelay: 2,
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
      },
    });
    this.bucket = client.bucket(options.bucket);
    this.prefix = options.prefix ?? '';
    this.resumableThreshold = options.resumableThresholdBytes ?? 8 * 1024 * 1024;
    this.chunkSize = options.chunkSizeBytes;
  }

  private name(key: string): string {
    return `${this.prefix}${checkKey(key)}`;
  }

  async put(key: string, data: Buffer, options: PutOptions): Promise<void> {
    await this.bucket.file(this.name(key)).save(data, {
      contentType: options.contentType,
      metadata: { cacheControl: options.cacheControl },
      resumable: data.length >= this.resumableThreshold,
      ...(this.chunkSize ? { chunkSize: this.chunkSize } : {}),
    });
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      const [contents] = await this.bucket.file(this.name(key)).download();
      return contents;
    } catch (error) {
      if ((error as { code?: number }).code === 404) return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await this.bucket.file(this.name(key)).delete({ ignoreNotFound: true });
  }
}
