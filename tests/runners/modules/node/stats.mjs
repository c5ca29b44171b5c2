export function executeFunction(input) {
  const values = input.values;
  const sum = values.reduce((a, b) => a + b, 0);
  return { count: values.length, sum, mean: values.length ? sum / values.length : null };
}
