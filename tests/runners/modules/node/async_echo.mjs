export async function executeFunction(input) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return { echo: input, async: true };
}
