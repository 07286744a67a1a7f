// unbzip2-stream ships no types: it exports one factory of an old-style (`through`) duplex stream.
declare module 'unbzip2-stream' {
  import type { Duplex } from 'node:stream';
  function unbzip2(): Duplex & NodeJS.ReadableStream;
  export default unbzip2;
}
