import {
  GC_NUDGE_EVERY_BYTES,
  GcNudge,
  createGcNudge,
  minorCollector,
} from '../../server/gc-nudge';

describe('GcNudge', () => {
  it('collects once per interval of data, however the data is cut', () => {
    let collections = 0;
    const nudge = new GcNudge(() => collections++, 100);
    for (let i = 0; i < 99; i++) nudge.note(1);
    expect(collections).toBe(0);
    nudge.note(1);
    expect(collections).toBe(1);
    nudge.note(250);
    expect(collections).toBe(2);
    for (let i = 0; i < 10; i++) nudge.note(10);
    expect(collections).toBe(3);
  });

  it('defaults to a few MiB between collections', () => {
    let collections = 0;
    const nudge = new GcNudge(() => collections++);
    nudge.note(GC_NUDGE_EVERY_BYTES - 1);
    expect(collections).toBe(0);
    nudge.note(1);
    expect(collections).toBe(1);
  });

  it('this Node provides a minor collector, and it frees dead young buffers', async () => {
    const collect = minorCollector();
    expect(typeof collect).toBe('function');
    const chunk = 64 * 1024;
    const count = 128; // 8 MiB of buffers, like the socket reads of an 8 MB upload
    let allocated = 0;
    for (let i = 0; i < count; i++) allocated += Buffer.allocUnsafeSlow(chunk).length;
    expect(allocated).toBe(chunk * count);
    const before = process.memoryUsage().arrayBuffers;
    collect?.();
    // V8 frees the backing stores on a background sweeper: give it a moment.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = process.memoryUsage().arrayBuffers;
    expect(before - after).toBeGreaterThan((chunk * count) / 2);
  });

  it('the server nudge reports data without throwing', () => {
    const nudge = createGcNudge();
    expect(() => nudge.note(GC_NUDGE_EVERY_BYTES * 2)).not.toThrow();
  });
});
