// Node tasks for the CLI tests.
export function executeFunction(input) {
  return { n: input.n * 2 };
}

export async function triple(input) {
  return { n: input.n * 3 };
}

export function boom() {
  throw new Error("boom on purpose");
}
