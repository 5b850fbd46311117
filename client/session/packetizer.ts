/**
 * 1028 packets out of a ciphertext stream (docs/protocol.md §3, §5): exact-size packets, the
 * last one holding the rest, never an empty packet (§9).
 */
import {
  SEND_FILE_PREFIX_SIZE,
  encodeSendFilePacketNumber,
  encodeSendFilePrefix,
  type SendFileFields,
} from '../../protocol';
import type { UploadPlan } from './upload-plan';

/**
 * Cuts a ciphertext stream into 1028 packets. The prefix is encoded once per upload and copied
 * per packet with only its packet number patched: encoding the string255 file name for every
 * packet costs more than the AES work at 1 KiB packets.
 */
export class Packetizer {
  private nextPacket = 1;
  private readonly carry: Buffer;
  private carryLength = 0;
  private readonly template: Buffer;
  private readonly fields: SendFileFields;

  constructor(
    private readonly plan: UploadPlan,
    private readonly clientId: Buffer,
  ) {
    this.fields = {
      contentSize: plan.contentSize,
      origSize: plan.size,
      packetNumber: 1,
      totalPackets: plan.totalPackets,
      fileName: plan.fileName,
    };
    this.template = encodeSendFilePrefix(clientId, this.fields, plan.chunkSize);
    this.carry = Buffer.allocUnsafe(plan.chunkSize);
  }

  /** Output bytes for `packets` packets whose content totals `content` bytes. */
  static outputSize(packets: number, content: number): number {
    return packets * SEND_FILE_PREFIX_SIZE + content;
  }

  /**
   * Packs the ciphertext `pieces` (after any carried bytes) into packets written to `target`;
   * returns the used part of `target`. Without `final`, a partial packet is carried over.
   */
  pack(pieces: readonly Buffer[], final: boolean, target: Buffer): Buffer {
    const chunk = this.plan.chunkSize;
    let total = this.carryLength;
    for (const p of pieces) total += p.length;
    const full = Math.floor(total / chunk);
    const rest = total - full * chunk;
    const packets = final && rest > 0 ? full + 1 : full;
    const content = final ? total : full * chunk;
    if (this.nextPacket + packets - 1 > this.plan.totalPackets) {
      throw new Error('more ciphertext than the upload plan allows');
    }
    if (packets === 0) {
      for (const p of pieces) this.carryLength += p.copy(this.carry, this.carryLength);
      return target.subarray(0, 0);
    }
    const out = target.subarray(0, Packetizer.outputSize(packets, content));
    // Source cursor over [carry, ...pieces].
    const sources =
      this.carryLength > 0 ? [this.carry.subarray(0, this.carryLength), ...pieces] : pieces;
    let src = 0;
    let srcOffset = 0;
    let at = 0;
    for (let i = 0; i < packets; i++) {
      const length = i < full ? chunk : rest;
      if (length === chunk) {
        this.template.copy(out, at);
        encodeSendFilePacketNumber(out, at, this.nextPacket);
      } else {
        encodeSendFilePrefix(
          this.clientId,
          { ...this.fields, packetNumber: this.nextPacket },
          length,
          out,
          at,
        );
      }
      at += SEND_FILE_PREFIX_SIZE;
      let need = length;
      while (need > 0) {
        const source = sources[src];
        const n = Math.min(need, source.length - srcOffset);
        source.copy(out, at, srcOffset, srcOffset + n);
        at += n;
        need -= n;
        srcOffset += n;
        if (srcOffset === source.length) {
          src++;
          srcOffset = 0;
        }
      }
      this.nextPacket++;
    }
    // Carry what is left (only without `final`); carry itself was consumed by the first packet.
    this.carryLength = 0;
    for (; src < sources.length; src++, srcOffset = 0) {
      this.carryLength += sources[src].copy(this.carry, this.carryLength, srcOffset);
    }
    if (final && this.nextPacket - 1 !== this.plan.totalPackets) {
      throw new Error('ciphertext ended before the planned number of packets');
    }
    return out;
  }
}
