/**
 * The byte side of the storage boundary (types.ts re-exports it): ByteStore, what a backend
 * stores objects with, and FileStore, what sessions publish uploads through (file-vault.ts
 * builds it from a FileCatalog and a ByteStore).
 */

/** What the caller knows about the key when it commits; never needed for correctness. */
export interface CommitHint {
  /**
   * The catalog has no live file under the key: a backend may skip what it does only for an
   * object being replaced (the disk holds the old file open across the rename).
   */
  readonly replacesNothing?: boolean;
}

/** Bytes of one object being written; nothing is visible under its key before `commit`. */
export interface ObjectWriter {
  /** Appends bytes; resolves when the backend took them (backpressure for the connection). */
  write(data: Buffer): Promise<void>;
  /** Durable, atomic publish: the key then holds exactly the bytes written, or the old object. */
  commit(hint?: CommitHint): Promise<void>;
  /** Drops what was written; safe to call more than once, after a failed write or a commit. */
  abort(): Promise<void>;
}

/**
 * File bytes under opaque keys (object-keys.ts). A backend refuses keys outside that grammar
 * with PATH_ESCAPE and never stores anything outside its own root.
 */
export interface ByteStore {
  begin(key: string): Promise<ObjectWriter>;
  /** The object's bytes as a stream, or undefined when there is none. */
  read(key: string): Promise<NodeJS.ReadableStream | undefined>;
  /** Publishes a copy of `from` under `to`, atomically; false when `from` does not exist. */
  copy(from: string, to: string): Promise<boolean>;
  /** No error when there is nothing under `key`. */
  remove(key: string): Promise<void>;
  /** Removes every object whose key starts with `prefix` (which ends in `/`). */
  removePrefix(prefix: string): Promise<void>;
  /** Drops writes a crash left unfinished; called once at start. Returns how many. */
  sweepIncomplete(): Promise<number>;
  /**
   * Publishes the finished local file at `path` (the server's own, on this store's file system)
   * as `key` by moving it, not copying: the file is fsynced, renamed over `key` atomically, and
   * its folder fsynced, the guarantees of `commit`. Only stores whose objects are files have
   * it; the others take the bytes through `begin`.
   */
  adopt?(key: string, path: string, hint?: CommitHint): Promise<void>;
}

/** What a publish (UploadSink.commit, FileStore.adoptUpload) made live. */
export interface Published {
  /** The live object's key, as the file's row records it. */
  readonly objectKey: string;
  /**
   * Takes the publish back when its row could not be written, so that the row left in place
   * and the live bytes agree again: the verified file it replaced comes back from the version
   * kept of it; with none kept, the published bytes are removed. Kept versions stay.
   */
  unpublish(): Promise<void>;
}

/** One upload's bytes as the session sees them; visible under the file's name after commit. */
export interface UploadSink {
  write(data: Buffer): Promise<void>;
  /** Publishes (keeping the verified file it replaces as a version). */
  commit(): Promise<Published>;
  abort(): Promise<void>;
}

/** The files of clients as sessions use them (file-vault.ts over a ByteStore). */
export interface FileStore {
  /** Starts an upload of `fileName` (already a checked base name, §9). */
  beginUpload(clientIdHex: string, fileName: string): Promise<UploadSink>;
  /**
   * Publishes a finished local file as `fileName` by moving it (ByteStore.adopt), keeping the
   * verified file it replaces as a version, as an UploadSink's commit does. Absent when the
   * ByteStore cannot adopt.
   */
  readonly adoptUpload?: (
    clientIdHex: string,
    fileName: string,
    path: string,
  ) => Promise<Published>;
  /** Removes the live bytes of a file (1031); kept versions stay. */
  remove(clientIdHex: string, fileName: string): Promise<void>;
  /** Removes everything of a client: live files and versions (a replaced registration). */
  removeClient(clientIdHex: string): Promise<void>;
}
