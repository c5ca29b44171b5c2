function helper(value) {
  throw new Error(`boom: ${value}`);
}

export function executeFunction(input) {
  return helper(input);
}
