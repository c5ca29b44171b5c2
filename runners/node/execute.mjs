// The default task of the Node runner image: return the input unchanged.
// Replace it by mounting your own module at /app/execute.mjs (or building FROM this image).
export function executeFunction(input) {
  return input;
}
