export function executeFunction(input) {
  if (input.fail) throw new Error("asked to fail");
  return { n: input.n };
}
