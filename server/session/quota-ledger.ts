/**
 * Bytes of uploads in progress, per client (`--quota`). The quota check on packet 1
 * counts what is stored plus what is reserved here, so uploads running at the same time on
 * several connections of one client cannot pass the quota together.
 */
export class QuotaLedger {
  private readonly reserved = new Map<string, number>();

  /** Bytes reserved by uploads of `client` that have not finished. */
  reservedBy(client: string): number {
    return this.reserved.get(client) ?? 0;
  }

  /** Reserves `bytes` for `client`; the returned function gives them back (once). */
  reserve(client: string, bytes: number): () => void {
    this.reserved.set(client, this.reservedBy(client) + bytes);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = this.reservedBy(client) - bytes;
      if (left > 0) this.reserved.set(client, left);
      else this.reserved.delete(client);
    };
  }

  /** Clients with uploads in progress (bounded by the connections). */
  get size(): number {
    return this.reserved.size;
  }
}
