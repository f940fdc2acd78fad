/**
 * The ESM entry: the CommonJS build's exports, so `import` and `require` share one copy of
 * every class (an error thrown through one is `instanceof` the other's).
 *
 * @module
 */
export * from "./index.js";
