/** V4Store in memory, for tests and the memory backend (same rules as disk/v4-identities.ts). */
import type { V4Identity, V4Store } from '../../session/v4/context';

export function createMemoryV4Store(): V4Store {
  const byFingerprint = new Map<string, V4Identity>();
  const byClient = new Map<string, V4Identity>();
  const hex = (id: Buffer): string => id.toString('hex');
  return {
    async findByFingerprint(fingerprint) {
      return byFingerprint.get(fingerprint);
    },
    async findByClientId(clientId) {
      return byClient.get(hex(clientId));
    },
    async bind(identity) {
      if (byFingerprint.has(identity.fingerprint) || byClient.has(hex(identity.clientId))) {
        return false;
      }
      const copy = { ...identity, clientId: Buffer.from(identity.clientId) };
      byFingerprint.set(identity.fingerprint, copy);
      byClient.set(hex(identity.clientId), copy);
      return true;
    },
    async unbind(fingerprint) {
      const identity = byFingerprint.get(fingerprint);
      if (!identity) return;
      byFingerprint.delete(fingerprint);
      byClient.delete(hex(identity.clientId));
    },
    async listIdentities() {
      return [...byFingerprint.values()].sort((a, b) => a.boundAt - b.boundAt);
    },
    async close() {},
  };
}
