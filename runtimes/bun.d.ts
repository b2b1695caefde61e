/** The slice of the `Bun` global that weft's adapters use (bun-types is not installed). */
declare namespace Bun {
  const version: string;
}
