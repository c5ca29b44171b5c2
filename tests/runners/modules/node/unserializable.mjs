export function executeFunction() {
  return { big: 1n };
}
