// The stats task for the Node runner: the runner imports /app/execute.mjs and calls
// executeFunction(input). Run it with
//   executor run examples/stats.mjs --runner node --input '{"values": [1, 2, 3, 4, 5]}'
export function executeFunction(input) {
  const values = input.values;
  const sum = values.reduce((acc, v) => acc + v, 0);
  return { count: values.length, sum, mean: sum / values.length };
}
