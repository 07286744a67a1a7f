// unbzip2-stream ships no types. We use its block decoder (lib/bzip2.js) and bit reader (lib/bit_iterator.js)
// directly, driving them block by block (bzip2-stream.ts).
declare module 'unbzip2-stream/lib/bzip2.js' {
  interface Bzip2 {
    /** Reads "BZh" and the level; returns the block size in units of 100 kB. Throws on a bad header. */
    header(bits: BitReader): number;
    /**
     * Decodes one block (sending each output byte to `out`) and returns the running stream CRC, or null at the
     * end-of-stream marker (after checking the stream CRC). Throws on corrupt data.
     */
    decompress(bits: BitReader, out: (byte: number) => void, buf: Int32Array, bufsize: number, streamCRC: number | null): number | null;
  }
  const bzip2: Bzip2;
  export default bzip2;
}
declare module 'unbzip2-stream/lib/bit_iterator.js' {
  function bitIterator(nextBuffer: () => Buffer | undefined): BitReader;
  export default bitIterator;
}
/** Reads n bits (n null: aligns to a byte); `bytesRead` counts the bytes started. */
interface BitReader {
  (n: number | null): number;
  bytesRead: number;
}
