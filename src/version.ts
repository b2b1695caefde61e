/** weft's version, reported by `weft --version` and in the mesh hello. */
export const VERSION = "0.1.0";
