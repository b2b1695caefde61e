/** The slice of the `Deno` global that weft's adapters use (Deno's own types are not installed). */
declare namespace Deno {
  const version: { deno: string };
}
