export function executeFunction(input) {
  return input;
}
