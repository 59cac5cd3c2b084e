// Minimal typing of snappyjs (the package ships none): snappy block format, pure JS.
declare module 'snappyjs' {
  /** Inflates a snappy block; throws when it is malformed or would pass `maxLength` bytes. */
  export function uncompress(compressed: Uint8Array, maxLength?: number): Uint8Array;
  /** Compresses into one snappy block. */
  export function compress(uncompressed: Uint8Array): Uint8Array;
}
